#pragma once
/// Wide ResNet of De et al. 2022 (JAX Privacy's WideResNet): weight-
/// standardised convolutions with gain and bias, GroupNorm, pre-activation
/// order act → norm → conv, TF "SAME" padding.

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/normalization.h"
#include "dptrain/models/activations.h"
#include "dptrain/models/image_classifier.h"

namespace dptrain::models {

/// Options of WideResNet: WRN-depth-width.
struct WideResNetOptions {
  WideResNetOptions(int64_t depth, int64_t width)
      : depth_(depth), width_(width) {}
  /// 6n + 4 for n residual blocks per stage (n ≥ 1).
  TORCH_ARG(int64_t, depth);
  /// Widening factor k: stage widths 16k, 32k, 64k.
  TORCH_ARG(int64_t, width);
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, in_channels) = 3;
  /// GroupNorm groups; every width (16 and 16k·2^s) must be divisible.
  TORCH_ARG(int64_t, norm_groups) = 16;
  /// Channels of the first convolution (16 in the paper); stage widths are
  /// stem_channels · width · (1, 2, 4).
  TORCH_ARG(int64_t, stem_channels) = 16;
  /// Dropout on the pooled features (training mode only; 0 = off).
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(Activation, activation) = Activation::kRelu;

  // TORCH_ARG leaves the access at private.
 public:
  /// Throws std::invalid_argument naming the bad option.
  void validate() const;
  /// Blocks per stage, (depth − 4) / 6.
  int64_t blocks_per_stage() const { return (depth_ - 4) / 6; }
};

/// One pre-activation residual block:
///   h = conv1(norm1(act(conv0(norm0(act(x))))))
///   out = h + shortcut, shortcut = shortcut_conv(shortcut_norm(act(x))) in
///   the first block of a stage (1×1, stride of the stage), else x.
class WideResNetBlockImpl : public torch::nn::Module {
 public:
  WideResNetBlockImpl(int64_t in_channels, int64_t out_channels, int64_t stride,
                      bool projection, const WideResNetOptions& options);
  /// [N, in, H, W] → [N, out, ceil(H/stride), ceil(W/stride)].
  torch::Tensor forward(const torch::Tensor& x);

  Activation activation;
  dp::GroupNorm norm0{nullptr}, norm1{nullptr}, shortcut_norm{nullptr};
  dp::WSConv2d conv0{nullptr}, conv1{nullptr}, shortcut_conv{nullptr};
};
TORCH_MODULE(WideResNetBlock);

/// WRN-d-k. Module paths: `stem` (WSConv2d 3×3 → 16), `stages.s.b.{norm0,
/// conv0, norm1, conv1, shortcut_norm, shortcut_conv}`, `final_norm`,
/// `classifier`. Forward: stem → stages (strides 1, 2, 2) → act →
/// final_norm → spatial mean → dropout → classifier. Parameter counts at 10
/// classes: WRN-16-4 2,753,818; WRN-40-4 8,961,306; WRN-28-10 36,500,378.
class WideResNetImpl : public ImageClassifier {
 public:
  explicit WideResNetImpl(WideResNetOptions options);
  /// [N, in_channels, H, W] (any H, W ≥ 1) → [N, num_classes].
  torch::Tensor forward(const torch::Tensor& images) override;

  WideResNetOptions options;
  dp::WSConv2d stem{nullptr};
  std::vector<std::vector<WideResNetBlock>> blocks;  ///< [stage][block]
  dp::GroupNorm final_norm{nullptr};
};
TORCH_MODULE(WideResNet);

/// Parameters of WideResNet(options), from the configuration alone.
int64_t wide_resnet_parameter_count(const WideResNetOptions& options);

}  // namespace dptrain::models
