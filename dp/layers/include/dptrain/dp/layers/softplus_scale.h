#pragma once
/// DP-aware positive elementwise scale: y = x · softplus(param). The RG-LRU's
/// decay parameter Λ of Griffin / RecurrentGemma
/// (log aₜ = −c·rₜ·softplus(Λ)) is one.

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <ostream>

#include "dptrain/dp/layers/elementwise.h"

namespace dptrain::dp {

/// y = x · softplus(param), softplus(z) = log(1 + eˣ) (torch's, threshold 20).
/// The parameter broadcasts against the input's trailing dimensions, as for
/// Scale; `init` sets the raw parameter (default 0, i.e. a scale of log 2).
class SoftplusScaleImpl : public torch::nn::Cloneable<SoftplusScaleImpl> {
 public:
  explicit SoftplusScaleImpl(ElementwiseOptions options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  /// [N, ...] → same shape. Throws if param has as many dims as the input.
  torch::Tensor forward(const torch::Tensor& input);
  ElementwiseOptions options;
  torch::Tensor param;  ///< raw parameter Λ, shape options.shape()
};
TORCH_MODULE(SoftplusScale);

}  // namespace dptrain::dp
