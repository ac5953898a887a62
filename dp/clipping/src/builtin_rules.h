#pragma once
// Factories of the built-in rules (one per DP layer type), used only by
// add_builtin_rules().

#include <cstdint>
#include <memory>

#include "dptrain/dp/clipping/rules.h"

namespace dptrain::dp::detail {

// Most elements of per-example tensors a rule keeps (or builds, for Grams)
// for one call: Linear's and Conv's per-example weight gradients
// (per_example, B·|W|), WSConv2d's per-example dŴ (LayerCall::rule_state)
// and the WSConv2d ghost route's B·p² and B·t² Grams; 2^25 elements is
// 128 MiB in float. benchmarks/RESULTS.md: at 2^24 WRN-16-4 B = 128's
// 16×16 convs (B·|W| = 18.9 M) missed the keep and paid a batch weight
// gradient on top of the norms ("Per-example gradient engine"); the conv
// rules' limit was raised to 2^25 with the fused WSConv2d kernels ("Image
// models"). Linear had stayed at 2^24 with no reason recorded; one limit
// now serves every rule.
constexpr int64_t kMaxKeptElements = int64_t{1} << 25;

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
