#pragma once
/// Small models for quick runs: the tanh CNN of Papernot et al. 2021 /
/// Tramèr & Boneh 2021, and a multilayer perceptron.

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/models/activations.h"
#include "dptrain/models/image_classifier.h"

namespace dptrain::models {

/// Options of TanhCnn.
struct TanhCnnOptions {
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, in_channels) = 1;
  /// Height = width of the input; sets the first Linear's in_features.
  TORCH_ARG(int64_t, image_size) = 28;
  /// Hidden width of the two convolutions and the first Linear.
  TORCH_ARG(int64_t, conv1_channels) = 16;
  TORCH_ARG(int64_t, conv2_channels) = 32;
  TORCH_ARG(int64_t, hidden) = 32;
  TORCH_ARG(Activation, activation) = Activation::kTanh;
};

/// Papernot et al. 2021 ("Tempered sigmoid activations"), used by Tramèr &
/// Boneh 2021 on (Fashion-)MNIST:
///   conv1 Conv(16, 8×8, stride 2, pad 2) → tanh → MaxPool(2, stride 1)
///   conv2 Conv(32, 4×4, stride 2)        → tanh → MaxPool(2, stride 1)
///   fc1 Linear(32·4·4 = 512 → 32) → tanh → classifier Linear(32 → 10).
/// 26,010 parameters for 1×28×28 and 10 classes.
class TanhCnnImpl : public ImageClassifier {
 public:
  explicit TanhCnnImpl(TanhCnnOptions options = {});
  /// [N, in_channels, image_size, image_size] → [N, num_classes].
  torch::Tensor forward(const torch::Tensor& images) override;
  /// Spatial side of conv2's pooled output for an input side `image_size`;
  /// throws std::invalid_argument if the image is too small (< 16).
  static int64_t feature_side(int64_t image_size);

  TanhCnnOptions options;
  dp::Conv2d conv1{nullptr};
  dp::Conv2d conv2{nullptr};
  dp::Linear fc1{nullptr};
};
TORCH_MODULE(TanhCnn);

/// Options of Mlp.
struct MlpOptions {
  TORCH_ARG(int64_t, num_classes) = 10;
  TORCH_ARG(int64_t, in_channels) = 1;
  TORCH_ARG(int64_t, image_size) = 28;
  /// Widths of the hidden layers, in order (may be empty: logistic
  /// regression).
  TORCH_ARG(std::vector<int64_t>, hidden) = std::vector<int64_t>{256};
  TORCH_ARG(Activation, activation) = Activation::kTanh;
};

/// Flatten → [Linear → activation] per hidden width → classifier Linear.
/// Hidden layers are `hidden.0`, `hidden.1`, ...
class MlpImpl : public ImageClassifier {
 public:
  explicit MlpImpl(MlpOptions options = {});
  /// [N, in_channels, image_size, image_size] → [N, num_classes].
  torch::Tensor forward(const torch::Tensor& images) override;

  MlpOptions options;
  std::vector<dp::Linear> hidden;
};
TORCH_MODULE(Mlp);

}  // namespace dptrain::models
