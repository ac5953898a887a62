#pragma once
/// NFNet-F0…F7 (Brock, De, Smith & Simonyan 2021, "High-Performance
/// Large-Scale Image Recognition Without Normalization"), as in the
/// deepmind-research/nfnets and JAX Privacy sources.

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

/// Options of NFNet. Defaults: F0.
struct NFNetOptions {
  TORCH_ARG(std::vector<int64_t>, depths) = std::vector<int64_t>{1, 2, 6, 3};
  /// Output width of each stage (4 stages, strides 1, 2, 2, 2).
  TORCH_ARG(std::vector<int64_t>, widths) = std::vector<int64_t>{256, 512, 1536,
                                                                 1536};
  /// Channels of the first three stem convolutions (3×3, strides 2, 1, 1);
  /// the fourth (stride 2) has widths[0] / 2.
  TORCH_ARG(std::vector<int64_t>, stem_channels) = std::vector<int64_t>{16, 32,
                                                                        64};
  /// Channels per group of the grouped 3×3 convolutions.
  TORCH_ARG(int64_t, group_width) = 128;
  /// Bottleneck width = group_width · ⌊⌊out · expansion⌋ / group_width⌋.
  TORCH_ARG(double, expansion) = 0.5;
  TORCH_ARG(double, se_ratio) = 0.5;
  /// final_conv has final_conv_multiplier · widths.back() channels.
  TORCH_ARG(int64_t, final_conv_multiplier) = 2;
  TORCH_ARG(int64_t, num_classes) = 1000;
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(double, alpha) = 0.2;
  /// Largest stochastic-depth rate (block i gets rate · i / num_blocks);
  /// the published training used 0.1, DP fine-tuning 0.
  TORCH_ARG(double, stochastic_depth) = 0.0;
  /// Dropout before the classifier (published: 0.2 for F0 … 0.5; DP: 0).
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(Activation, activation) = Activation::kScaledGelu;
  /// Resolutions of the published training and evaluation (informative).
  TORCH_ARG(int64_t, train_image_size) = 192;
  TORCH_ARG(int64_t, test_image_size) = 256;

  // TORCH_ARG leaves the access at private.
 public:
  /// Throws std::invalid_argument naming the bad option.
  void validate() const;
};

/// Options of NFNet-F0 … F7 ("F0" or "f0"); throws for another name.
NFNetOptions nfnet_variant(const std::string& variant);

/// NFNet block: out = act(x)·β; shortcut = conv_shortcut(avgpool(out)) when
/// strided, conv_shortcut(out) on a channel change, else x;
/// r = conv2(act(conv1b(act(conv1(act(conv0(out))))))); r = 2·se(r)·r;
/// returns shortcut + α · skip_gain · stochastic_depth(r).
class NFNetBlockImpl : public torch::nn::Module {
 public:
  NFNetBlockImpl(int64_t in_channels, int64_t out_channels, int64_t stride,
                 double beta, double stochastic_depth_rate,
                 const NFNetOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  /// Bottleneck width for `out_channels` (a multiple of group_width).
  static int64_t bottleneck_width(int64_t out_channels,
                                  const NFNetOptions& options);

  double beta, alpha, stochastic_depth_rate;
  int64_t stride;
  Activation activation;
  dp::WSConv2d conv0{nullptr}, conv1{nullptr}, conv1b{nullptr}, conv2{nullptr},
      conv_shortcut{nullptr};
  SqueezeExcite se{nullptr};
  dp::Scale skip_gain{nullptr};  ///< scalar, initialised to 0 (SkipInit)
};
TORCH_MODULE(NFNetBlock);

/// Module paths: `stem.conv0 … stem.conv3`, `blocks.i.{conv0, conv1, conv1b,
/// conv2, conv_shortcut, se.fc0, se.fc1, skip_gain}`, `final_conv`,
/// `classifier`. At 1000 classes: F0 71,489,284; F1 132,634,256;
/// F2 193,779,228; F3 254,924,200 parameters.
class NFNetImpl : public ImageClassifier {
 public:
  explicit NFNetImpl(NFNetOptions options = {});
  /// [N, in_channels, H, W] → [N, num_classes].
  torch::Tensor forward(const torch::Tensor& images) override;

  NFNetOptions options;
  std::vector<dp::WSConv2d> stem;
  std::vector<NFNetBlock> blocks;
  dp::WSConv2d final_conv{nullptr};
};
TORCH_MODULE(NFNet);

/// Parameters of NFNet(options), from the configuration alone.
int64_t nfnet_parameter_count(const NFNetOptions& options);

}  // namespace dptrain::models
