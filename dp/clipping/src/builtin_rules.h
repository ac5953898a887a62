#pragma once
// Factories of the built-in rules (one per DP layer type), used only by
// add_builtin_rules().

#include <memory>

#include "dptrain/dp/clipping/rules.h"

namespace dptrain::dp::detail {
std::shared_ptr<const LayerRule> make_linear_rule();
std::shared_ptr<const LayerRule> make_conv1d_rule();
std::shared_ptr<const LayerRule> make_conv2d_rule();
std::shared_ptr<const LayerRule> make_wsconv2d_rule();
std::shared_ptr<const LayerRule> make_group_norm_rule();
std::shared_ptr<const LayerRule> make_layer_norm_rule();
std::shared_ptr<const LayerRule> make_rms_norm_rule();
std::shared_ptr<const LayerRule> make_scale_rule();
std::shared_ptr<const LayerRule> make_bias_rule();
std::shared_ptr<const LayerRule> make_embedding_rule();
std::shared_ptr<const LayerRule> make_softplus_scale_rule();
}  // namespace dptrain::dp::detail
