#include "dptrain/dp/clipping/rules.h"

#include <torch/torch.h>

#include "builtin_rules.h"
#include "dptrain/dp/clipping/rule_registry.h"
#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/elementwise.h"
#include "dptrain/dp/layers/embedding.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/layers/normalization.h"
#include "dptrain/dp/layers/softplus_scale.h"

namespace dptrain::dp {

namespace detail {
torch::Tensor group_sum(const torch::Tensor& rows, int64_t group_size) {
  if (group_size == 1) return rows;
  std::vector<int64_t> shape = {rows.size(0) / group_size, group_size};
  for (int64_t i = 1; i < rows.dim(); ++i) shape.push_back(rows.size(i));
  return rows.reshape(shape).sum(1);
}

torch::Tensor squared_norm_per_example(const torch::Tensor& per_example) {
  return per_example.reshape({per_example.size(0), -1}).pow(2).sum(1);
}
}  // namespace detail

void MaterialisingRule::squared_norms(
    const LayerCall& call, int64_t group_size, const std::vector<bool>& needed,
    std::vector<torch::Tensor>& norms,
    std::vector<torch::Tensor>& per_example) const {
  for (size_t j = 0; j < needed.size(); ++j) {
    if (!needed[j]) continue;
    per_example[j] = per_example_grads(call, j, group_size);
    norms[j] = detail::squared_norm_per_example(per_example[j]);
  }
}

torch::Tensor MaterialisingRule::per_example_grads(const LayerCall& call,
                                                   size_t slot,
                                                   int64_t group_size) const {
  return detail::group_sum(per_row_grads(call, slot), group_size);
}

void MaterialisingRule::weighted_sums(
    const LayerCall& call, const std::vector<torch::Tensor>& row_weights,
    std::vector<torch::Tensor>& sums) const {
  for (size_t j = 0; j < row_weights.size(); ++j) {
    if (!row_weights[j].defined()) continue;
    auto rows = per_row_grads(call, j);
    sums[j] = torch::tensordot(row_weights[j].to(rows.dtype()), rows, {0}, {0});
  }
}

void RuleRegistry::add(std::type_index type,
                       std::shared_ptr<const LayerRule> rule) {
  TORCH_CHECK(rule != nullptr, "RuleRegistry::add: rule is null");
  rules_[type] = std::move(rule);
}

const LayerRule* RuleRegistry::find(const torch::nn::Module& module) const {
  auto it = rules_.find(std::type_index(typeid(module)));
  return it == rules_.end() ? nullptr : it->second.get();
}

// The one explicit list of built-in rules (no static registration: in a
// static library such initialisers silently vanish).
void add_builtin_rules(RuleRegistry& registry) {
  registry.add<LinearImpl>(detail::make_linear_rule());
  registry.add<Conv1dImpl>(detail::make_conv1d_rule());
  registry.add<Conv2dImpl>(detail::make_conv2d_rule());
  registry.add<WSConv2dImpl>(detail::make_wsconv2d_rule());
  registry.add<GroupNormImpl>(detail::make_group_norm_rule());
  registry.add<LayerNormImpl>(detail::make_layer_norm_rule());
  registry.add<RMSNormImpl>(detail::make_rms_norm_rule());
  registry.add<ScaleImpl>(detail::make_scale_rule());
  registry.add<BiasImpl>(detail::make_bias_rule());
  registry.add<EmbeddingImpl>(detail::make_embedding_rule());
  registry.add<SoftplusScaleImpl>(detail::make_softplus_scale_rule());
}

std::shared_ptr<const RuleRegistry> builtin_rules() {
  static const std::shared_ptr<const RuleRegistry> registry = [] {
    auto r = std::make_shared<RuleRegistry>();
    add_builtin_rules(*r);
    return r;
  }();
  return registry;
}

}  // namespace dptrain::dp
