#pragma once
/// The per-layer clipping groups of a model, shared by the engine and the
/// microbatch oracle so that both clip the same groups.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::dp {

namespace detail {
/// Unique parameters of `model` (first appearance order) and, for each, its
/// clipping group: modules owning trainable parameters, merged where they
/// share one; −1 for a frozen parameter. Returns the number of groups L.
int64_t parameter_groups(const torch::nn::Module& model,
                         std::vector<torch::Tensor>& params,
                         std::vector<std::string>& names,
                         std::vector<int64_t>& groups);
}  // namespace detail

}  // namespace dptrain::dp
