#pragma once
/// Pieces shared by the normaliser-free networks (NF-ResNet, NFNet):
/// squeeze-and-excite, stochastic depth, TF-"SAME" pooling.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "dptrain/dp/layers/linear.h"

namespace dptrain::models {

/// Squeeze-and-excite gate: g = sigmoid(fc1(relu(fc0(mean_hw(x))))),
/// returned as [N, C, 1, 1]; the block multiplies 2·g·x. fc0 has
/// max(1, ⌊in·ratio⌋) outputs.
class SqueezeExciteImpl : public torch::nn::Module {
 public:
  SqueezeExciteImpl(int64_t in_channels, int64_t out_channels, double ratio);
  /// [N, in, H, W] → gate [N, out, 1, 1].
  torch::Tensor forward(const torch::Tensor& x);
  /// max(1, ⌊in_channels · ratio⌋).
  static int64_t hidden_channels(int64_t in_channels, double ratio);

  dp::Linear fc0{nullptr}, fc1{nullptr};
};
TORCH_MODULE(SqueezeExcite);

/// Stochastic depth as in the NFNet sources: in training mode each row is
/// kept (unscaled) with probability 1 − rate, else zeroed; identity when not
/// training or rate == 0. Per row, so examples stay independent.
torch::Tensor stochastic_depth(const torch::Tensor& x, double rate,
                               bool training);

/// Max pooling with TF "SAME" padding (padded with −inf; the odd pixel on
/// the right/bottom): [N, C, H, W] → [N, C, ceil(H/s), ceil(W/s)].
torch::Tensor max_pool_same(const torch::Tensor& x, int64_t window,
                            int64_t stride);
/// Average pooling window 2, stride 2, TF "SAME" (padding excluded from the
/// average, as hk.avg_pool): → [N, C, ceil(H/2), ceil(W/2)].
torch::Tensor avg_pool_2x2_same(const torch::Tensor& x);

}  // namespace dptrain::models
