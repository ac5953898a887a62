#pragma once
/// A small built-in feature network for FID-style scores on small images
/// (28×28 grey or 32×32 colour), to be trained as a classifier on public data
/// (e.g. the Fashion-MNIST training split); its penultimate layer gives the
/// features. Fréchet distances on these features are NOT comparable with
/// papers' FIDs, which use pytorch-fid's InceptionV3 (fid_inception.h): they
/// only rank synthetic sets against each other on one trained network.
///
///   conv1 3×3 p1 (in → c) → ReLU → max-pool 2
///   conv2 3×3 p1 (c → 2c) → ReLU → max-pool 2
///   conv3 3×3 p1 (2c → 4c) → ReLU → global mean  = features [N, 4c]
///   classifier Linear(4c → num_classes)
/// Built from dp layers (an ImageClassifier), so the existing classifier
/// training paths can train it; nothing about it is private.

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "dptrain/dp/layers/conv.h"
#include "dptrain/models/image_classifier.h"

namespace dptrain::models {

struct FeatureCnnOptions {
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, in_channels) = 1;
  TORCH_ARG(int64_t, width) = 32;  ///< c: the features have 4c dimensions
};

class FeatureCnnImpl : public ImageClassifier {
 public:
  /// Throws std::invalid_argument naming the option unless all are >= 1.
  explicit FeatureCnnImpl(FeatureCnnOptions options = {});
  /// Logits [N, num_classes] = classifier(features(images)).
  torch::Tensor forward(const torch::Tensor& images) override;
  /// The penultimate features [N, 4·width] of images [N, in_channels, H, W]
  /// (H, W ≥ 4).
  torch::Tensor features(const torch::Tensor& images);
  int64_t feature_dim() const { return 4 * options.width(); }

  FeatureCnnOptions options;
  dp::Conv2d conv1{nullptr};
  dp::Conv2d conv2{nullptr};
  dp::Conv2d conv3{nullptr};
};
TORCH_MODULE(FeatureCnn);

}  // namespace dptrain::models
