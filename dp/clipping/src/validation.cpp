#include "dptrain/dp/clipping/validation.h"

#include <torch/torch.h>

#include <sstream>
#include <unordered_set>

namespace dptrain::dp {
namespace {

std::string join_problems(const std::vector<std::string>& problems) {
  std::ostringstream out;
  out << "the per-example gradient engine cannot handle " << problems.size()
      << " module(s) of this model:";
  for (const auto& p : problems) out << "\n  " << p;
  return out.str();
}

bool is_batch_norm(const torch::nn::Module& m) {
  return dynamic_cast<const torch::nn::BatchNorm1dImpl*>(&m) != nullptr ||
         dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&m) != nullptr ||
         dynamic_cast<const torch::nn::BatchNorm3dImpl*>(&m) != nullptr;
}

std::string list(const std::vector<std::string>& names) {
  std::string s = "[";
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s + "]";
}

}  // namespace

UnsupportedLayerError::UnsupportedLayerError(std::vector<std::string> problems)
    : std::invalid_argument(join_problems(problems)),
      problems_(std::move(problems)) {}

std::vector<std::string> find_unsupported_layers(const torch::nn::Module& model,
                                                 const RuleRegistry& registry) {
  std::vector<std::string> problems;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const torch::nn::Module& m = *item.value();
    const std::string path = item.key().empty() ? "<root>" : item.key();
    const std::string where = path + " (" + m.name() + "): ";
    if (is_batch_norm(m)) {
      problems.push_back(where +
                         "BatchNorm mixes the examples of a batch, so "
                         "per-example gradients and the DP guarantee do not "
                         "hold; use dptrain::dp::GroupNorm instead");
      continue;
    }
    std::vector<std::string> trainable;
    std::vector<const c10::TensorImpl*> trainable_ptrs;
    for (const auto& p : m.named_parameters(/*recurse=*/false)) {
      if (p.value().requires_grad()) {
        trainable.push_back(p.key());
        trainable_ptrs.push_back(p.value().unsafeGetTensorImpl());
      }
    }
    if (trainable.empty()) continue;
    const LayerRule* rule = registry.find(m);
    if (rule == nullptr) {
      problems.push_back(
          where + "trainable parameters " + list(trainable) +
          " have no per-example gradient rule; use the dptrain::dp layer of "
          "that kind, freeze them (requires_grad=false), or train with "
          "microbatch_clip_and_accumulate");
      continue;
    }
    std::unordered_set<const c10::TensorImpl*> covered;
    for (const auto& t : rule->parameters(m)) {
      if (t.defined()) covered.insert(t.unsafeGetTensorImpl());
    }
    std::vector<std::string> missing;
    for (size_t i = 0; i < trainable.size(); ++i) {
      if (!covered.count(trainable_ptrs[i])) missing.push_back(trainable[i]);
    }
    if (!missing.empty()) {
      problems.push_back(where + "trainable parameters " + list(missing) +
                         " are not covered by the rule for this layer type");
    }
  }
  return problems;
}

void validate_model(const torch::nn::Module& model,
                    const RuleRegistry& registry) {
  auto problems = find_unsupported_layers(model, registry);
  if (!problems.empty()) throw UnsupportedLayerError(std::move(problems));
}

}  // namespace dptrain::dp
