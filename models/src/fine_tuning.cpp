#include "dptrain/models/fine_tuning.h"

#include <torch/torch.h>

#include <map>
#include <regex>
#include <stdexcept>

#include "dptrain/dp/layers/linear.h"

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

std::vector<std::string> add_lora(torch::nn::Module& module,
                                  const LoraOptions& options) {
  std::regex re;
  try {
    re = std::regex(options.layers, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument("LoRA layers pattern '" + options.layers +
                                "' is not a valid regex: " + e.what());
  }
  std::vector<std::pair<std::string, std::shared_ptr<dp::LinearImpl>>> chosen;
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    auto linear = std::dynamic_pointer_cast<dp::LinearImpl>(item.value());
    // Adapters are Linears too: never adapt an adapter.
    const bool adapter = item.key().find("lora_") != std::string::npos;
    if (linear && !adapter && std::regex_search(item.key(), re)) {
      chosen.emplace_back(item.key(), linear);
    }
  }
  if (chosen.empty()) {
    throw std::invalid_argument("LoRA layers pattern '" + options.layers +
                                "' matches no Linear layer of the model");
  }
  // A tied weight (an LM head sharing the embedding) cannot take a merged
  // weight of its own: refuse it by name.
  std::map<const void*, std::vector<std::string>> holders;
  for (const auto& p : module.named_parameters(true)) {
    holders[p.value().data_ptr()].push_back(p.key());
  }
  for (const auto& [name, linear] : chosen) {
    const auto& names = holders[linear->weight.data_ptr()];
    for (const auto& other : names) {
      if (other != name + ".weight") {
        throw std::invalid_argument("LoRA on '" + name +
                                    "': its weight is tied to '" + other +
                                    "'; leave the layer out of the pattern");
      }
    }
  }
  const double alpha =
      options.alpha == 0.0 ? static_cast<double>(options.rank) : options.alpha;
  for (auto& p : module.parameters(true)) p.requires_grad_(false);
  std::vector<std::string> names;
  for (auto& [name, linear] : chosen) {
    linear->add_lora(options.rank, alpha);
    names.push_back(name);
  }
  return names;
}

void copy_merged_lora(const torch::nn::Module& from, torch::nn::Module& to) {
  std::map<std::string, torch::Tensor> source;
  for (const auto& p : from.named_parameters(true)) source[p.key()] = p.value();
  for (const auto& b : from.named_buffers(true)) source[b.key()] = b.value();
  for (const auto& item : from.named_modules("", /*include_self=*/false)) {
    auto linear = std::dynamic_pointer_cast<dp::LinearImpl>(item.value());
    if (linear && linear->has_lora()) {
      source[item.key() + ".weight"] = linear->merged_weight();
    }
  }
  torch::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, torch::Tensor& dst) {
    const auto it = source.find(name);
    if (it == source.end()) {
      throw std::invalid_argument("copy_merged_lora: the source has no '" +
                                  name + "'");
    }
    if (it->second.sizes() != dst.sizes()) {
      throw std::invalid_argument(
          "copy_merged_lora: '" + name + "' has shape " +
          c10::str(it->second.sizes()) + " in the source and " +
          c10::str(dst.sizes()) + " in the target");
    }
    dst.copy_(it->second);
  };
  for (auto& p : to.named_parameters(true)) copy(p.key(), p.value());
  for (auto& b : to.named_buffers(true)) copy(b.key(), b.value());
}

}  // namespace dptrain::models
