#pragma once
/// Fine-tuning helpers: choose which parameters train (the others are
/// frozen with requires_grad = false, which the DP engine skips: they cost
/// no per-example work and get no noise).

#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/models/image_classifier.h"

namespace dptrain::models {

/// Makes trainable exactly the parameters whose module path matches
/// `pattern` (ECMAScript regex, std::regex_search: "stages\\.2|classifier")
/// and freezes the rest. Returns the trainable names. Throws
/// std::invalid_argument for an invalid regex or one that matches no
/// parameter (naming the pattern).
std::vector<std::string> set_trainable(torch::nn::Module& module,
                                       const std::string& pattern);

/// Trains only the classifier head (`classifier.weight`, `classifier.bias`).
std::vector<std::string> train_only_classifier(ImageClassifier& model);

/// Makes every parameter trainable; returns their number of tensors.
int64_t unfreeze_all(torch::nn::Module& module);

/// Which parameters a fine-tuning run trains.
struct FineTuneOptions {
  /// New number of classes; 0 keeps the head. A new head is freshly
  /// initialised (and trainable).
  int64_t num_classes = 0;
  /// "all", "classifier" (the head only), or a regex for set_trainable.
  std::string trainable = "all";
};

/// Applies `options`: reset the head if asked, then choose the trainable
/// parameters. Returns the trainable names.
std::vector<std::string> prepare_fine_tuning(ImageClassifier& model,
                                             const FineTuneOptions& options);

/// Low-rank adaptation of `module`'s dp::Linear layers.
struct LoraOptions {
  int64_t rank = 8;
  double alpha = 0.0;  ///< 0: alpha = rank (scale 1)
  /// Layers adapted: those whose module path matches (ECMAScript regex,
  /// std::regex_search), e.g. "blocks\\." or "mlp|attention".
  std::string layers = ".";
};

/// Adds LoRA adapters (dp::LinearImpl::add_lora) to every dp::Linear whose
/// path matches options.layers and freezes every other parameter of
/// `module`: only the adapters train. Returns the paths adapted. Throws
/// std::invalid_argument for an invalid regex, one that matches no Linear
/// layer, or a bad rank or alpha (naming the value).
std::vector<std::string> add_lora(torch::nn::Module& module,
                                  const LoraOptions& options);

/// Copies every parameter and buffer of `to` from `from` by name, with each
/// LoRA layer of `from` merged (weight + scale·B·A) and its adapters left
/// out: `to` is the same architecture without LoRA and computes the same
/// function. Throws std::invalid_argument naming a tensor `from` lacks or
/// whose shape differs.
void copy_merged_lora(const torch::nn::Module& from, torch::nn::Module& to);

}  // namespace dptrain::models
