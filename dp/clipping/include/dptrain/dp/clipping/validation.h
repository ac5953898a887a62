#pragma once
/// Checks that a model can be handled by the per-example gradient engine.

#include <torch/nn/module.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dptrain/dp/clipping/rule_registry.h"

namespace dptrain::dp {

/// Thrown when a model has layers the engine cannot handle. what() lists
/// every offending module path with the reason and the fix.
class UnsupportedLayerError : public std::invalid_argument {
 public:
  explicit UnsupportedLayerError(std::vector<std::string> problems);
  /// One entry per offending module: "<path> (<type>): <reason>".
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// Every problem with `model`: any BatchNorm (it mixes the examples of a
/// batch, even when frozen), and every module with a trainable parameter
/// that no rule covers. Empty if the engine can handle the model.
std::vector<std::string> find_unsupported_layers(const torch::nn::Module& model,
                                                 const RuleRegistry& registry);

/// Throws UnsupportedLayerError listing find_unsupported_layers(), if any.
void validate_model(const torch::nn::Module& model,
                    const RuleRegistry& registry);

}  // namespace dptrain::dp
