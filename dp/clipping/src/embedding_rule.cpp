// Rule for Embedding. An example's weight gradient has one row per distinct
// index it uses, the sum of G over that index's positions. Norms: sum G
// over equal (example, index) keys (a sort of B·T keys and an index_add,
// cost B·T·d), never the [B, V, d] tensor nor the B·T² ghost Gram.
// Weighted sum: G scaled per row, index_add into [V, d] (the non-private
// cost). Positions holding padding_idx get no gradient, as in torch.
#include <torch/torch.h>

#include "builtin_rules.h"
#include "dptrain/dp/layers/embedding.h"

namespace dptrain::dp::detail {
namespace {

class EmbeddingRule final : public LayerRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const override {
    return {dynamic_cast<const EmbeddingImpl&>(layer).weight};
  }

  void squared_norms(const LayerCall& call, int64_t group_size,
                     const std::vector<bool>& needed,
                     std::vector<torch::Tensor>& norms,
                     std::vector<torch::Tensor>&) const override {
    if (!needed[0]) return;
    const auto& l = dynamic_cast<const EmbeddingImpl&>(*call.layer);
    const int64_t batch = call.input.size(0) / group_size;
    auto g = masked_grad(call, l);
    auto keys = example_keys(call, l, group_size);
    auto unique = torch::_unique2(keys, false, true, false);
    auto inverse = std::get<1>(unique).reshape({-1});
    const int64_t n_unique = std::get<0>(unique).size(0);
    auto sums = torch::zeros({n_unique, g.size(1)}, g.options())
                    .index_add_(0, inverse, g);
    auto examples = example_ids(call, group_size).reshape({-1});
    auto example_of_key = torch::zeros({n_unique}, examples.options())
                              .scatter_(0, inverse, examples);
    norms[0] = torch::zeros({batch}, g.options())
                   .index_add_(0, example_of_key, sums.pow(2).sum(1));
  }

  torch::Tensor per_example_grads(const LayerCall& call, size_t,
                                  int64_t group_size) const override {
    const auto& l = dynamic_cast<const EmbeddingImpl&>(*call.layer);
    const int64_t batch = call.input.size(0) / group_size;
    const int64_t v = l.weight.size(0), d = l.weight.size(1);
    auto g = masked_grad(call, l);
    return torch::zeros({batch * v, d}, g.options())
        .index_add_(0, example_keys(call, l, group_size), g)
        .view({batch, v, d});
  }

  void weighted_sums(const LayerCall& call,
                     const std::vector<torch::Tensor>& row_weights,
                     std::vector<torch::Tensor>& sums) const override {
    if (!row_weights[0].defined()) return;
    const auto& l = dynamic_cast<const EmbeddingImpl&>(*call.layer);
    const int64_t rows = call.input.size(0);
    const int64_t d = l.weight.size(1);
    auto g = masked_grad(call, l).view({rows, -1, d});
    g = (g * row_weights[0].to(g.dtype()).view({rows, 1, 1})).view({-1, d});
    sums[0] =
        torch::zeros_like(l.weight).index_add_(0, call.input.reshape({-1}), g);
  }

 private:
  // G as [N·T, d], zero at padding positions.
  static torch::Tensor masked_grad(const LayerCall& call,
                                   const EmbeddingImpl& l) {
    auto g = call.grad_output.reshape({-1, l.weight.size(1)});
    if (l.options.padding_idx().has_value()) {
      auto keep = (call.input.reshape({-1}) != *l.options.padding_idx());
      g = g * keep.unsqueeze(1).to(g.dtype());
    }
    return g;
  }
  // Example index of every position, [N, T].
  static torch::Tensor example_ids(const LayerCall& call, int64_t group_size) {
    const auto& idx = call.input;
    const int64_t rows = idx.size(0);
    auto row = torch::arange(rows, idx.options().dtype(torch::kLong));
    auto ex = torch::div(row, group_size, "floor");
    return ex.view({rows, 1}).expand(
        {rows, idx.numel() / std::max<int64_t>(rows, 1)});
  }
  // example · V + index for every position, [N·T].
  static torch::Tensor example_keys(const LayerCall& call,
                                    const EmbeddingImpl& l,
                                    int64_t group_size) {
    auto idx = call.input.reshape({call.input.size(0), -1}).to(torch::kLong);
    return (example_ids(call, group_size) * l.weight.size(0) + idx)
        .reshape({-1});
  }
};

}  // namespace

std::shared_ptr<const LayerRule> make_embedding_rule() {
  return std::make_shared<EmbeddingRule>();
}

}  // namespace dptrain::dp::detail
