#pragma once
/// Recording of DP-layer calls while a GradientEngine records a forward pass.
///
/// A DP layer calls `detail::maybe_record` at the end of its forward. Outside a
/// recording scope that is one thread-local load and a branch; inside, the
/// layer's activation and output are kept so that the engine can obtain the
/// output gradient after its single backward pass.

#include <ATen/core/Tensor.h>
#include <c10/core/TensorImpl.h>
#include <torch/csrc/autograd/edge.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dptrain::dp {

/// One call of a DP layer recorded during a forward pass.
struct LayerCall {
  /// The layer that was called (its Module base subobject).
  const torch::nn::Module* layer = nullptr;
  /// The activation A the layer's rule needs, in a layer-specific form:
  /// Linear: its input [N, ..., in]; Conv: its zero-padded input; norms: the
  /// normalised input before the affine map; Embedding: the indices.
  torch::Tensor input;
  /// The layer's output, kept only where the engine's recorder was told
  /// that its rule may read it (LayerRule::may_read_output); else undefined,
  /// so that outputs nothing else holds are freed during the forward pass.
  torch::Tensor output;
  /// Where the output enters the autograd graph (its grad_fn and output
  /// number): the engine differentiates the loss with respect to it.
  torch::autograd::Edge output_edge;
  /// The output's version counter (shared with it), to tell an in-place
  /// change after recording (output_version) without holding the output.
  c10::VariableVersion output_version_counter;
  /// G = d(sum of losses)/d(output), [same shape as output]; set by the engine.
  torch::Tensor grad_output;
  /// Layer-specific integers (Conv: the symmetric padding given to the op).
  std::vector<int64_t> ints;
  /// output's version counter when recorded; an in-place change is an error.
  int64_t output_version = 0;
  /// The output's dtype (bf16 under autocast, the parameters' otherwise).
  c10::ScalarType output_dtype = c10::ScalarType::Float;
  /// What a rule's squared_norms keeps for its weighted_sums on the same call
  /// (e.g. WSConv2d's per-example dŴ); released with the call.
  mutable torch::Tensor rule_state;
  /// The route the rule takes on this call (one of LayerRule::routes), set
  /// by the engine before the rule runs; empty: the rule's cost model.
  std::string route;
};

namespace detail {

/// The calls recorded by one engine.
struct Recorder {
  std::vector<LayerCall> calls;
  /// Whether a call (input and output set) keeps its output; unset: all do.
  std::function<bool(const LayerCall&)> keep_output;
};

/// The recorder active on this thread, or nullptr outside recording.
inline thread_local Recorder* tls_recorder = nullptr;

/// Appends a call to the active recorder (see maybe_record).
void record_call(const torch::nn::Module& layer, const torch::Tensor& input,
                 const torch::Tensor& output, std::vector<int64_t> ints);

/// Whether a recorder is active on this thread.
inline bool is_recording() { return tls_recorder != nullptr; }

/// Records the call if a recorder is active, the output takes part in
/// autograd and the layer has a trainable parameter.
inline void maybe_record(const torch::nn::Module& layer,
                         const torch::Tensor& input,
                         const torch::Tensor& output,
                         std::vector<int64_t> ints = {}) {
  if (tls_recorder != nullptr) {
    record_call(layer, input, output, std::move(ints));
  }
}

}  // namespace detail
}  // namespace dptrain::dp
