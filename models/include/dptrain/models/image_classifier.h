#pragma once
/// The base of every image model: a torch::nn::Module with a virtual forward
/// (torch::nn::Module has none) and a linear classifier head named
/// `classifier`, so registry, fine-tuning and weight helpers treat all models
/// alike.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <string>

#include "dptrain/dp/layers/linear.h"

namespace dptrain::models {

/// How a classifier head's weight is initialised (its bias is always zero,
/// except kTorchDefault which keeps torch::nn::Linear's initialisation).
enum class HeadInit {
  kTorchDefault,  ///< Kaiming-uniform (a = √5) weight and bias, as torch
  kFanIn,         ///< truncated normal (±2σ), σ = 1/√fan_in (Haiku
                  ///< VarianceScaling(1.0), JAX Privacy WRN)
  kNormal001,     ///< N(0, 0.01²) (NFNet, NF-ResNet)
  kZeros,         ///< all zeros
};

/// An image classifier: images [N, C, H, W] → logits [N, num_classes]. Built
/// only from dptrain::dp layers and parameter-free ops, so the per-example
/// engine can clip it exactly. Rows are independent in every mode.
class ImageClassifier : public torch::nn::Module {
 public:
  /// Logits [N, num_classes] of images [N, in_channels, H, W]. Throws
  /// std::invalid_argument for a wrong rank or channel count (and, for
  /// models with a fixed input size, a wrong H or W).
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;

  /// Number of output classes (the head's out_features).
  int64_t num_classes() const;
  /// Number of input channels the model expects.
  int64_t in_channels() const { return in_channels_; }
  /// The classifier head (module path `classifier`).
  dp::Linear& classifier() { return classifier_; }
  const dp::Linear& classifier() const { return classifier_; }

  /// Replaces the head by a fresh Linear(in_features, num_classes),
  /// initialised with this model's HeadInit, on the old head's device and
  /// dtype, trainable. Throws std::invalid_argument if num_classes < 1.
  void reset_classifier(int64_t num_classes);

 protected:
  ImageClassifier(std::string name, int64_t in_channels);
  /// Registers the head as `classifier`; call once from the constructor.
  void register_classifier(int64_t in_features, int64_t num_classes,
                           HeadInit init);
  /// Throws std::invalid_argument unless images is [N, in_channels, H, W].
  void check_input(const torch::Tensor& images) const;
  /// The head on features [N, C, H, W]: the mean over H and W, then dropout
  /// with probability `dropout` in training mode (none when 0), then the
  /// classifier → [N, num_classes].
  torch::Tensor classify_pooled(const torch::Tensor& features, double dropout);

 private:
  dp::Linear classifier_{nullptr};
  HeadInit head_init_ = HeadInit::kTorchDefault;
  int64_t in_channels_ = 0;
};

/// Initialises `head` in place as `init` says (no autograd).
void init_head(dp::LinearImpl& head, HeadInit init);

/// Number of scalar parameters of `module`, each tensor once even if shared
/// (tied weights). trainable_only: only those with requires_grad.
int64_t count_parameters(const torch::nn::Module& module,
                         bool trainable_only = false);

}  // namespace dptrain::models
