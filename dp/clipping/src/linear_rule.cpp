// Rule for Linear. With A [B, T, in] and G [B, T, out] per example (T = the
// flattened sequence dims times the group size K), two routes for the weight;
// costs in multiply-adds per example:
//  - materialised: ∇ᵢ = GᵢᵀAᵢ by one bmm, T·in·out, and its norm. ∇ is kept
//    (B·in·out memory) when B·in·out ≤ kMaxKeptElements, and the weighted
//    sum is then Σᵢ cᵢ∇ᵢ, a [B]×[B, in·out] product (memory-bound; charged
//    2·in·out); otherwise the weighted sum is one more matmul, T·in·out.
//  - ghost: ‖∇ᵢ‖² = <AᵢAᵢᵀ, GᵢGᵢᵀ> = Σ_ts (a_t·a_s)(g_t·g_s), T²·(in+out)
//    and B·T² memory (for T = 1: ‖a‖²‖g‖², in+out), plus the weighted sum as
//    ONE matmul over the flattened [B·T, ·] rows scaled by cᵢ, T·in·out (the
//    non-private weight gradient: the weighted sum never needs per-example
//    gradients).
// Ghost iff T²·(in+out) + T·in·out < T·in·out + (kept ? 2·in·out : T·in·out).
// Measured (benchmarks/RESULTS.md, 1 thread): the bmm at T = 128, d = 256,
// B = 16 runs within ~15% of the non-private mm of equal FLOPs, so no
// efficiency factor is applied. Sequence model (T = 128, d = 256):
// materialised and kept (ghost would cost 2× the FLOPs); T = 1 classifiers:
// ghost.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "builtin_rules.h"
#include "dptrain/dp/layers/linear.h"

namespace dptrain::dp::detail {
namespace {

constexpr const char* kGhost = "ghost";
constexpr const char* kMaterialised = "materialised";

// The route choice above; t = T·K per example.
bool use_ghost(int64_t batch, int64_t t, int64_t in, int64_t out) {
  const double td = static_cast<double>(t);
  const double wsize = static_cast<double>(in) * static_cast<double>(out);
  const bool kept = batch * in * out <= kMaxKeptElements;
  const double ghost = td * td * static_cast<double>(in + out) + td * wsize;
  const double materialised = td * wsize + (kept ? 2.0 * wsize : td * wsize);
  return ghost < materialised;
}

class LinearRule final : public LayerRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const override {
    const auto& l = dynamic_cast<const LinearImpl&>(layer);
    return {l.weight, l.bias};
  }

  // "ghost" and "materialised" for sequences (T·K > 1), the cost model's
  // first; ghost only when the model picks it or its B·T² Grams fit
  // kMaxKeptElements. One route (none to choose) for T·K = 1.
  std::vector<std::string> routes(const LayerCall& call,
                                  int64_t group_size) const override {
    const auto& a = call.input;
    const int64_t batch = a.size(0) / group_size;
    const int64_t in = a.size(-1);
    const int64_t out = call.grad_output.size(-1);
    const int64_t t = batch == 0 ? 0 : a.numel() / (batch * in);
    if (t <= 1) return {};
    if (use_ghost(batch, t, in, out)) return {kGhost, kMaterialised};
    if (batch * t * t <= kMaxKeptElements) return {kMaterialised, kGhost};
    return {kMaterialised};
  }

  void squared_norms(const LayerCall& call, int64_t group_size,
                     const std::vector<bool>& needed,
                     std::vector<torch::Tensor>& norms,
                     std::vector<torch::Tensor>& per_example) const override {
    const auto& a = call.input;
    const auto& g = call.grad_output;
    const int64_t batch = a.size(0) / group_size;
    const int64_t in = a.size(-1);
    const int64_t out = g.size(-1);
    auto a3 = a.reshape({batch, -1, in});
    auto g3 = g.reshape({batch, -1, out});
    const int64_t t = a3.size(1);
    if (needed[0]) {
      if (t == 1) {
        norms[0] = a3.pow(2).sum({1, 2}) * g3.pow(2).sum({1, 2});
      } else if (call.route.empty() ? use_ghost(batch, t, in, out)
                                    : call.route == kGhost) {
        auto gram_a = torch::bmm(a3, a3.transpose(1, 2));
        auto gram_g = torch::bmm(g3, g3.transpose(1, 2));
        norms[0] = (gram_a * gram_g).sum({1, 2});
      } else {
        auto pe = torch::bmm(g3.transpose(1, 2), a3);
        norms[0] = pe.pow(2).sum({1, 2});
        if (batch * in * out <= kMaxKeptElements) per_example[0] = pe;
      }
    }
    if (needed.size() > 1 && needed[1]) {
      per_example[1] = g3.sum(1);
      norms[1] = per_example[1].pow(2).sum(1);
    }
  }

  torch::Tensor per_example_grads(const LayerCall& call, size_t slot,
                                  int64_t group_size) const override {
    const auto& a = call.input;
    const auto& g = call.grad_output;
    const int64_t batch = a.size(0) / group_size;
    auto g3 = g.reshape({batch, -1, g.size(-1)});
    if (slot == 1) return g3.sum(1);
    auto a3 = a.reshape({batch, -1, a.size(-1)});
    return torch::bmm(g3.transpose(1, 2), a3);
  }

  void weighted_sums(const LayerCall& call,
                     const std::vector<torch::Tensor>& row_weights,
                     std::vector<torch::Tensor>& sums) const override {
    const auto& a = call.input;
    const auto& g = call.grad_output;
    const int64_t rows = a.size(0);
    const int64_t in = a.size(-1);
    const int64_t out = g.size(-1);
    auto g3 = g.reshape({rows, -1, out});
    if (row_weights[0].defined()) {
      auto w = row_weights[0].to(g.dtype()).view({rows, 1, 1});
      sums[0] = (g3 * w).reshape({-1, out}).t().mm(a.reshape({-1, in}));
    }
    if (row_weights.size() > 1 && row_weights[1].defined()) {
      auto w = row_weights[1].to(g.dtype()).view({1, rows});
      sums[1] = w.mm(g3.reshape({rows, -1})).view({-1, out}).sum(0);
    }
  }
};

}  // namespace

std::shared_ptr<const LayerRule> make_linear_rule() {
  return std::make_shared<LinearRule>();
}

}  // namespace dptrain::dp::detail
