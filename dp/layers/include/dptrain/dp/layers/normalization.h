#pragma once
/// DP-aware normalisation layers: GroupNorm, LayerNorm, RMSNorm. Each
/// normalises one example at a time (no BatchNorm: it mixes examples).

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/options/normalization.h>
#include <torch/nn/pimpl.h>

#include <ostream>
#include <vector>

namespace dptrain::dp {

/// Same options as torch::nn::GroupNorm: (num_groups, num_channels).eps.affine.
using GroupNormOptions = torch::nn::GroupNormOptions;
/// Same options as torch::nn::LayerNorm:
/// (normalized_shape).eps.elementwise_affine.
using LayerNormOptions = torch::nn::LayerNormOptions;

/// Group normalisation: [N, C, ...] → same shape; weight and bias [C].
class GroupNormImpl : public torch::nn::Cloneable<GroupNormImpl> {
 public:
  GroupNormImpl(int64_t num_groups, int64_t num_channels)
      : GroupNormImpl(GroupNormOptions(num_groups, num_channels)) {}
  explicit GroupNormImpl(const GroupNormOptions& options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);

  GroupNormOptions options;
  torch::Tensor weight;  ///< [C] (ones), undefined without affine
  torch::Tensor bias;    ///< [C] (zeros), undefined without affine
};
TORCH_MODULE(GroupNorm);

/// Layer normalisation over the trailing `normalized_shape` dimensions.
class LayerNormImpl : public torch::nn::Cloneable<LayerNormImpl> {
 public:
  LayerNormImpl(std::vector<int64_t> normalized_shape)  // NOLINT: as torch
      : LayerNormImpl(LayerNormOptions(std::move(normalized_shape))) {}
  explicit LayerNormImpl(LayerNormOptions options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  /// [N, ..., *normalized_shape] → same shape.
  torch::Tensor forward(const torch::Tensor& input);

  LayerNormOptions options;
  torch::Tensor weight;  ///< [*normalized_shape] (ones)
  torch::Tensor bias;    ///< [*normalized_shape] (zeros)
};
TORCH_MODULE(LayerNorm);

/// Options of RMSNorm.
struct RMSNormOptions {
  /* implicit */ RMSNormOptions(int64_t dim) : dim_(dim) {}  // NOLINT
  /// Size of the last input dimension, which is normalised.
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(double, eps) = 1e-6;
};

/// RMS normalisation over the last dimension (Griffin / Gemma form):
/// y = x · rsqrt(mean(x², -1) + eps) · (1 + scale), scale [dim] init zeros.
class RMSNormImpl : public torch::nn::Cloneable<RMSNormImpl> {
 public:
  explicit RMSNormImpl(RMSNormOptions options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  /// [N, ..., dim] → same shape.
  torch::Tensor forward(const torch::Tensor& input);

  RMSNormOptions options;
  torch::Tensor scale;  ///< [dim]
};
TORCH_MODULE(RMSNorm);

}  // namespace dptrain::dp
