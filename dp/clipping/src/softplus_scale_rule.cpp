// Rule for SoftplusScale: y = x·softplus(Λ), so ∂L/∂Λ = Σ (G ⊙ x) · σ(Λ)
// summed over the broadcast dimensions. The parameter is small (one value per
// channel), so per-row gradients are materialised.
#include <torch/torch.h>

#include "builtin_rules.h"
#include "dptrain/dp/layers/softplus_scale.h"

namespace dptrain::dp::detail {
namespace {

class SoftplusScaleRule final : public MaterialisingRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const override {
    return {dynamic_cast<const SoftplusScaleImpl&>(layer).param};
  }
  torch::Tensor per_row_grads(const LayerCall& call, size_t) const override {
    const auto& l = dynamic_cast<const SoftplusScaleImpl&>(*call.layer);
    const auto shape = l.param.sizes();
    const auto prod = call.grad_output * call.input;
    std::vector<int64_t> target(prod.dim(), 1);
    target[0] = prod.size(0);
    const int64_t offset = prod.dim() - static_cast<int64_t>(shape.size());
    for (size_t i = 0; i < shape.size(); ++i) target[offset + i] = shape[i];
    std::vector<int64_t> out = {prod.size(0)};
    out.insert(out.end(), shape.begin(), shape.end());
    // torch's softplus is linear above its threshold (20): derivative 1.
    const auto p = l.param.detach().to(prod.scalar_type());
    const auto slope =
        torch::where(p > 20.0, torch::ones_like(p), torch::sigmoid(p));
    return prod.sum_to_size(target).reshape(out) * slope;
  }
};

}  // namespace

std::shared_ptr<const LayerRule> make_softplus_scale_rule() {
  return std::make_shared<SoftplusScaleRule>();
}

}  // namespace dptrain::dp::detail
