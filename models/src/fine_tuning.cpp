#include "dptrain/models/fine_tuning.h"

#include <torch/torch.h>

#include <regex>
#include <stdexcept>

namespace dptrain::models {

std::vector<std::string> set_trainable(torch::nn::Module& module,
                                       const std::string& pattern) {
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument("trainable pattern '" + pattern +
                                "' is not a valid regex: " + e.what());
  }
  const auto params = module.named_parameters(true);
  std::vector<std::string> trainable;
  for (const auto& p : params) {
    if (std::regex_search(p.key(), re)) trainable.push_back(p.key());
  }
  if (trainable.empty()) {
    throw std::invalid_argument("trainable pattern '" + pattern +
                                "' matches no parameter of the model");
  }
  for (const auto& p : params) {
    p.value().requires_grad_(std::regex_search(p.key(), re));
  }
  return trainable;
}

std::vector<std::string> train_only_classifier(ImageClassifier& model) {
  return set_trainable(model, "^classifier\\.");
}

int64_t unfreeze_all(torch::nn::Module& module) {
  int64_t n = 0;
  for (auto& p : module.parameters(true)) {
    p.requires_grad_(true);
    ++n;
  }
  return n;
}

std::vector<std::string> prepare_fine_tuning(ImageClassifier& model,
                                             const FineTuneOptions& options) {
  if (options.num_classes < 0) {
    throw std::invalid_argument(
        "num_classes must be >= 0 (0 keeps the head), got " +
        std::to_string(options.num_classes));
  }
  if (options.num_classes > 0) model.reset_classifier(options.num_classes);
  if (options.trainable == "all") {
    unfreeze_all(model);
    std::vector<std::string> names;
    for (const auto& p : model.named_parameters(true)) names.push_back(p.key());
    return names;
  }
  if (options.trainable == "classifier" || options.trainable == "head") {
    return train_only_classifier(model);
  }
  return set_trainable(model, options.trainable);
}

}  // namespace dptrain::models
