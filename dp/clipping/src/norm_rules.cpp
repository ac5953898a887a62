// Rules for GroupNorm, LayerNorm, RMSNorm, Scale and Bias. Their parameters
// are small (a few thousand entries), so per-example gradients are always
// materialised: cost N·(activation size) FLOPs, memory B·|θ|.
#include <torch/torch.h>

#include "builtin_rules.h"
#include "dptrain/dp/layers/elementwise.h"
#include "dptrain/dp/layers/normalization.h"

namespace dptrain::dp::detail {
namespace {

class GroupNormRule final : public MaterialisingRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const override {
    const auto& l = dynamic_cast<const GroupNormImpl&>(layer);
    return {l.weight, l.bias};
  }
  torch::Tensor per_row_grads(const LayerCall& call,
                              size_t slot) const override {
    const auto& g = call.grad_output;
    const int64_t n = g.size(0), c = g.size(1);
    if (slot == 0) return (g * call.input).reshape({n, c, -1}).sum(2);
    return g.reshape({n, c, -1}).sum(2);
  }
};

// Sums [N, ..., *shape] over the middle dimensions: [N, *shape].
torch::Tensor sum_middle(const torch::Tensor& t, at::IntArrayRef shape) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  std::vector<int64_t> out = {t.size(0)};
  out.insert(out.end(), shape.begin(), shape.end());
  return t.reshape({t.size(0), -1, numel}).sum(1).view(out);
}

class LayerNormRule final : public MaterialisingRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const override {
    const auto& l = dynamic_cast<const LayerNormImpl&>(layer);
    return {l.weight, l.bias};
  }
  torch::Tensor per_row_grads(const LayerCall& call,
                              size_t slot) const override {
    const auto& l = dynamic_cast<const LayerNormImpl&>(*call.layer);
    const auto& shape = l.options.normalized_shape();
    if (slot == 0) return sum_middle(call.grad_output * call.input, shape);
    return sum_middle(call.grad_output, shape);
  }
};

class RMSNormRule final : public MaterialisingRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const override {
    return {dynamic_cast<const RMSNormImpl&>(layer).scale};
  }
  torch::Tensor per_row_grads(const LayerCall& call, size_t) const override {
    const auto& g = call.grad_output;
    return sum_middle(g * call.input, {g.size(-1)});
  }
};

// Reduces [N, ...] to [N, *param_shape] as broadcasting requires.
torch::Tensor reduce_to_param(const torch::Tensor& t, at::IntArrayRef shape) {
  std::vector<int64_t> target(t.dim(), 1);
  target[0] = t.size(0);
  const int64_t offset = t.dim() - static_cast<int64_t>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) target[offset + i] = shape[i];
  std::vector<int64_t> out = {t.size(0)};
  out.insert(out.end(), shape.begin(), shape.end());
  return t.sum_to_size(target).reshape(out);
}

class ScaleRule final : public MaterialisingRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const override {
    return {dynamic_cast<const ScaleImpl&>(layer).scale};
  }
  torch::Tensor per_row_grads(const LayerCall& call, size_t) const override {
    const auto& l = dynamic_cast<const ScaleImpl&>(*call.layer);
    return reduce_to_param(call.grad_output * call.input, l.scale.sizes());
  }
};

class BiasRule final : public MaterialisingRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const override {
    return {dynamic_cast<const BiasImpl&>(layer).bias};
  }
  torch::Tensor per_row_grads(const LayerCall& call, size_t) const override {
    const auto& l = dynamic_cast<const BiasImpl&>(*call.layer);
    return reduce_to_param(call.grad_output, l.bias.sizes());
  }
};

}  // namespace

std::shared_ptr<const LayerRule> make_group_norm_rule() {
  return std::make_shared<GroupNormRule>();
}
std::shared_ptr<const LayerRule> make_layer_norm_rule() {
  return std::make_shared<LayerNormRule>();
}
std::shared_ptr<const LayerRule> make_rms_norm_rule() {
  return std::make_shared<RMSNormRule>();
}
std::shared_ptr<const LayerRule> make_scale_rule() {
  return std::make_shared<ScaleRule>();
}
std::shared_ptr<const LayerRule> make_bias_rule() {
  return std::make_shared<BiasRule>();
}

}  // namespace dptrain::dp::detail
