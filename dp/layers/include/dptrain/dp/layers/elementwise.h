#pragma once
/// DP-aware elementwise parameters: a learned scale (gain, gate) or bias that
/// broadcasts against the trailing dimensions of its input.

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <ostream>
#include <vector>

namespace dptrain::dp {

/// Options of Scale and Bias.
struct ElementwiseOptions {
  /* implicit */ ElementwiseOptions(std::vector<int64_t> shape)  // NOLINT
      : shape_(std::move(shape)) {}
  /// Parameter shape; it must broadcast against the input's trailing
  /// dimensions (never the row dimension). {} is a scalar; {C, 1, 1} a
  /// per-channel value for [N, C, H, W].
  TORCH_ARG(std::vector<int64_t>, shape);
  /// Initial value of every entry; unset: Scale 1, Bias 0.
  TORCH_ARG(std::optional<double>, init) = std::nullopt;
};

/// y = x · scale.
class ScaleImpl : public torch::nn::Cloneable<ScaleImpl> {
 public:
  explicit ScaleImpl(ElementwiseOptions options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  /// [N, ...] → same shape. Throws if scale has as many dims as the input.
  torch::Tensor forward(const torch::Tensor& input);
  ElementwiseOptions options;
  torch::Tensor scale;
};
TORCH_MODULE(Scale);

/// y = x + bias.
class BiasImpl : public torch::nn::Cloneable<BiasImpl> {
 public:
  explicit BiasImpl(ElementwiseOptions options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  ElementwiseOptions options;
  torch::Tensor bias;
};
TORCH_MODULE(Bias);

}  // namespace dptrain::dp
