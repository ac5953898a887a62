#pragma once
/// The per-layer rules of the per-example gradient engine.
///
/// A rule answers, from one recorded call (activation A, output gradient G),
/// (i) each example's squared gradient norm for each of the layer's
/// parameters and (ii) a weighted sum of the rows' gradients. Rows are grouped:
/// with group size K, rows i·K … i·K+K−1 form example i and the rule reports
/// norms of the SUM of the group's row gradients (the engine divides by K).

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/dp/layers/recording.h"

namespace dptrain::dp {

/// Computes per-example quantities for one layer type.
class LayerRule {
 public:
  virtual ~LayerRule() = default;

  /// The layer's parameters in a fixed order (undefined for an absent bias).
  virtual std::vector<torch::Tensor> parameters(
      const torch::nn::Module& layer) const = 0;

  /// The exact routes squared_norms and weighted_sums may take on this call
  /// (grad_output set), its cost model's choice first; every other route
  /// must fit the same memory bound. squared_norms, weighted_sums and
  /// uses_output follow call.route when it is one of them. Empty (the
  /// default) or one route: nothing to choose (routes.h).
  virtual std::vector<std::string> routes(const LayerCall& /*call*/,
                                          int64_t /*group_size*/) const {
    return {};
  }

  /// Asked when a call is recorded (input and output set, no gradient
  /// yet): may squared_norms read call.output? If false the output is not
  /// kept (it is freed in the forward pass unless autograd holds it), and
  /// call.output is then undefined in every later method. Default false.
  virtual bool may_read_output(const LayerCall& /*call*/) const {
    return false;
  }

  /// True if squared_norms on this call (grad_output set) would use
  /// call.output; the engine otherwise releases outputs after the backward
  /// pass. Rules must still work when output is undefined.
  virtual bool uses_output(const LayerCall& /*call*/,
                           int64_t /*group_size*/) const {
    return false;
  }

  /// Asked right after squared_norms, with `summed[j]` for each slot that
  /// weighted_sums will later be asked for (no per-example gradient kept):
  /// does weighted_sums read call.input, call.output or call.grad_output for
  /// them? If false the engine releases all three at once (the backward's
  /// peak then holds only what weighted_sums uses: call.rule_state and the
  /// layer's parameters). Default true.
  virtual bool weighted_sums_read_activations(
      const LayerCall& /*call*/, const std::vector<bool>& /*summed*/) const {
    return true;
  }

  /// For every slot j with needed[j]: norms[j] = [B] squared norms of each
  /// example's (group-summed) gradient of parameter j. A rule that
  /// materialised per-example gradients [B, *shape] may leave them in
  /// per_example[j] for the engine to reuse. Both vectors are pre-sized.
  virtual void squared_norms(const LayerCall& call, int64_t group_size,
                             const std::vector<bool>& needed,
                             std::vector<torch::Tensor>& norms,
                             std::vector<torch::Tensor>& per_example) const = 0;

  /// Per-example gradients of parameter `slot`, [B, *shape], each the sum of
  /// its group's rows. Used for parameters shared by several calls.
  virtual torch::Tensor per_example_grads(const LayerCall& call, size_t slot,
                                          int64_t group_size) const = 0;

  /// For every slot j with row_weights[j] defined ([N]): sums[j] =
  /// Σ_r row_weights[j][r] · ∇_r param_j, shaped as the parameter.
  virtual void weighted_sums(const LayerCall& call,
                             const std::vector<torch::Tensor>& row_weights,
                             std::vector<torch::Tensor>& sums) const = 0;
};

/// Base for rules that always materialise per-row gradients (cheap when the
/// parameters are small: norm layers, elementwise parameters).
class MaterialisingRule : public LayerRule {
 public:
  /// Gradient of parameter `slot` for every row, [N, *shape].
  virtual torch::Tensor per_row_grads(const LayerCall& call,
                                      size_t slot) const = 0;

  void squared_norms(const LayerCall& call, int64_t group_size,
                     const std::vector<bool>& needed,
                     std::vector<torch::Tensor>& norms,
                     std::vector<torch::Tensor>& per_example) const override;
  torch::Tensor per_example_grads(const LayerCall& call, size_t slot,
                                  int64_t group_size) const override;
  void weighted_sums(const LayerCall& call,
                     const std::vector<torch::Tensor>& row_weights,
                     std::vector<torch::Tensor>& sums) const override;
};

namespace detail {
/// [N, ...] → [N / K, ...]: the sum over each group of K consecutive rows.
torch::Tensor group_sum(const torch::Tensor& rows, int64_t group_size);
/// [B, ...] → [B]: squared L2 norm of each example.
torch::Tensor squared_norm_per_example(const torch::Tensor& per_example);
}  // namespace detail

}  // namespace dptrain::dp
