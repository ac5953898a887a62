#pragma once
/// The microbatch oracle: per-example clipping by plain autograd, one example
/// at a time, for any torch::nn::Module. The reference for the engine's tests
/// and the fallback for models the engine cannot handle (slow: B backward
/// passes).

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dptrain/dp/clipping/clipping.h"

namespace dptrain::dp {

/// For each example i < num_examples, example_losses(i) returns the losses of
/// its K rows ([K] or a scalar); its gradient is that of their mean. Clips
/// as GradientEngine does (same per-layer groups: modules owning trainable
/// parameters, merged where they share one) and ADDS the clipped sum to each
/// trainable parameter's .grad. Throws std::invalid_argument if
/// num_examples < 0.
ClipResult microbatch_clip_and_accumulate(
    torch::nn::Module& model, int64_t num_examples,
    const std::function<torch::Tensor(int64_t)>& example_losses,
    const ClippingOptions& options);

}  // namespace dptrain::dp
