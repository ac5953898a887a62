#pragma once
/// Normaliser-free pre-activation ResNet (Brock, De & Smith 2021), as in the
/// NFNet sources and JAX Privacy's ImageNet NF-ResNet-50 (De et al. 2022).

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/elementwise.h"
#include "dptrain/models/activations.h"
#include "dptrain/models/image_classifier.h"
#include "dptrain/models/nf_common.h"

namespace dptrain::models {

/// Options of NFResNet. Defaults: NF-ResNet-50.
struct NFResNetOptions {
  TORCH_ARG(std::vector<int64_t>, depths) = std::vector<int64_t>{3, 4, 6, 3};
  /// Output width of each stage (4 stages, strides 1, 2, 2, 2).
  TORCH_ARG(std::vector<int64_t>, widths) = std::vector<int64_t>{256, 512, 1024,
                                                                 2048};
  /// Channels of the 7×7 stride-2 stem convolution.
  TORCH_ARG(int64_t, stem_channels) = 64;
  /// Bottleneck width = ⌊width · bottleneck_ratio⌋.
  TORCH_ARG(double, bottleneck_ratio) = 0.25;
  TORCH_ARG(int64_t, num_classes) = 1000;
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(double, alpha) = 0.2;
  /// Largest stochastic-depth rate (block i gets rate · i / num_blocks).
  TORCH_ARG(double, stochastic_depth) = 0.0;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(Activation, activation) = Activation::kScaledRelu;
  TORCH_ARG(bool, use_se) = false;
  TORCH_ARG(double, se_ratio) = 0.25;
  /// Initial value of every block's skip_gain: 0 (SkipInit) in the NFNet
  /// sources; JAX Privacy's ImageNet DP config (De et al.) uses 1.
  TORCH_ARG(double, skip_init_gain) = 0.0;

  // TORCH_ARG leaves the access at private.
 public:
  /// Throws std::invalid_argument naming the bad option.
  void validate() const;
};

/// NF-ResNet-{50,101,152,200} options by depth; throws for another.
NFResNetOptions nf_resnet_variant(int64_t depth);

/// Bottleneck block: out = act(x)·β; shortcut = conv_shortcut(out) if the
/// shape changes, else x; r = conv2(act(conv1(act(conv0(out))))) [·2·se(r)];
/// returns x' = shortcut + α · skip_gain · stochastic_depth(r).
class NFResNetBlockImpl : public torch::nn::Module {
 public:
  NFResNetBlockImpl(int64_t in_channels, int64_t out_channels, int64_t stride,
                    double beta, double stochastic_depth_rate,
                    const NFResNetOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

  double beta, alpha, stochastic_depth_rate;
  Activation activation;
  dp::WSConv2d conv0{nullptr}, conv1{nullptr}, conv2{nullptr},
      conv_shortcut{nullptr};
  SqueezeExcite se{nullptr};
  dp::Scale skip_gain{nullptr};  ///< scalar, initialised to skip_init_gain
};
TORCH_MODULE(NFResNetBlock);

/// Module paths: `stem` (7×7/2 WSConv2d, then 3×3/2 SAME max-pool),
/// `blocks.i.{conv0, conv1, conv2, conv_shortcut, se.fc0, se.fc1,
/// skip_gain}`, `classifier`. NF-ResNet-50 at 1000 classes: 25,557,048
/// parameters.
class NFResNetImpl : public ImageClassifier {
 public:
  explicit NFResNetImpl(NFResNetOptions options = {});
  /// [N, in_channels, H, W] → [N, num_classes].
  torch::Tensor forward(const torch::Tensor& images) override;

  NFResNetOptions options;
  dp::WSConv2d stem{nullptr};
  std::vector<NFResNetBlock> blocks;
};
TORCH_MODULE(NFResNet);

/// Parameters of NFResNet(options), from the configuration alone.
int64_t nf_resnet_parameter_count(const NFResNetOptions& options);

}  // namespace dptrain::models
