#pragma once
/// Registry of layer rules, keyed by the layer's exact type.

#include <torch/nn/module.h>

#include <memory>
#include <typeindex>
#include <unordered_map>

#include "dptrain/dp/clipping/rules.h"

namespace dptrain::dp {

/// Maps a layer's exact dynamic type (e.g. typeid(LinearImpl)) to its rule.
class RuleRegistry {
 public:
  /// Adds or replaces the rule for `type`.
  void add(std::type_index type, std::shared_ptr<const LayerRule> rule);
  /// Convenience: add<LinearImpl>(rule).
  template <typename Layer>
  void add(std::shared_ptr<const LayerRule> rule) {
    add(std::type_index(typeid(Layer)), std::move(rule));
  }
  /// The rule for the module's exact type, or nullptr.
  const LayerRule* find(const torch::nn::Module& module) const;
  size_t size() const { return rules_.size(); }

 private:
  std::unordered_map<std::type_index, std::shared_ptr<const LayerRule>> rules_;
};

/// Registers the rules of every built-in DP layer (the one explicit list).
void add_builtin_rules(RuleRegistry& registry);

/// A registry holding the built-in rules (built once, shared).
std::shared_ptr<const RuleRegistry> builtin_rules();

}  // namespace dptrain::dp
