#pragma once
/// The per-example gradient engine: one backward pass, per-example norms from
/// per-layer rules, clipping, and the sum of clipped gradients in `.grad`.
///
/// Typical step:
///   GradientEngine engine(model, ClippingOptions(1.0));
///   optimizer over engine.parameters();
///   {
///     auto recording = engine.record();
///     auto loss = per_example_loss(model->forward(x), y);      // [B·K]
///     engine.clip_and_accumulate(loss, K);                     // Σ cᵢ gᵢ
///   }
///   add noise N(0, σ²·sensitivity²) to each grad, divide by the expected
///   batch size, optimizer.step(), optimizer.zero_grad().

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dptrain/dp/clipping/clipping.h"
#include "dptrain/dp/clipping/routes.h"
#include "dptrain/dp/clipping/rule_registry.h"
#include "dptrain/dp/layers/recording.h"

namespace dptrain::dp {

/// While alive, DP layers called on this thread record for its engine.
/// Restores the previously active recorder (if any) when destroyed.
class RecordingGuard {
 public:
  explicit RecordingGuard(detail::Recorder* recorder);
  ~RecordingGuard();
  RecordingGuard(const RecordingGuard&) = delete;
  RecordingGuard& operator=(const RecordingGuard&) = delete;
  RecordingGuard(RecordingGuard&& other) noexcept;
  RecordingGuard& operator=(RecordingGuard&&) = delete;

 private:
  detail::Recorder* previous_ = nullptr;
  bool active_ = false;
};

/// The phases of one GradientEngine::clip_and_accumulate, in this order.
enum class EnginePhase {
  kBackward,      ///< one backward pass to the DP layers' outputs; each
                  ///< layer's norms are taken inside it (layer_begin /
                  ///< layer_end with kNorms) as its gradient arrives
  kNorms,         ///< the norms of shared (tied) parameters
  kClipFactors,   ///< norms → clip factors
  kWeightedSums,  ///< Σᵢ cᵢ·gᵢ: kept per-example gradients, or each rule
  kAccumulate,    ///< the sums added into .grad
};
/// "backward to layer outputs", "norms (rules)", ...
const char* to_string(EnginePhase phase);

/// Watches the phases of an engine's clip_and_accumulate, e.g. to time them
/// (`dptrain bench step --profile`). Called on the engine's thread, in
/// order; the engine does not wait for the device, so an observer that
/// times a GPU must synchronise itself. Sees no values: it cannot change
/// what is clipped.
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void phase_begin(EnginePhase /*phase*/) {}
  virtual void phase_end(EnginePhase /*phase*/) {}
  /// Around one layer call's rule: its squared_norms (phase kNorms, called
  /// inside kBackward as the call's gradient arrives, or inside kNorms), or
  /// its weighted_sums (kWeightedSums). On a GPU the backward, and so the
  /// norms, may run on autograd's device thread. `kept`, at the end of kNorms:
  /// the rule materialised per-example gradients that the weighted sum then
  /// uses.
  virtual void layer_begin(EnginePhase /*phase*/, const LayerCall& /*call*/) {}
  virtual void layer_end(EnginePhase /*phase*/, const LayerCall& /*call*/,
                         bool /*kept*/) {}
};

/// Book-keeping per-example clipping for a model made of DP layers.
class GradientEngine {
 public:
  /// Validates the model (throws UnsupportedLayerError listing every
  /// offending module) and fixes the per-layer clipping groups. `registry`
  /// defaults to builtin_rules().
  GradientEngine(std::shared_ptr<torch::nn::Module> model,
                 ClippingOptions options,
                 std::shared_ptr<const RuleRegistry> registry = nullptr);
  template <typename M>
  GradientEngine(const torch::nn::ModuleHolder<M>& model,
                 ClippingOptions options,
                 std::shared_ptr<const RuleRegistry> registry = nullptr)
      : GradientEngine(std::static_pointer_cast<torch::nn::Module>(model.ptr()),
                       std::move(options), std::move(registry)) {}

  /// Starts recording DP-layer calls on this thread (drops stale records).
  RecordingGuard record();

  /// Runs one backward pass of Σ per_example_loss (parameter gradients not
  /// computed), clips each example's gradient and ADDS Σᵢ cᵢ·gᵢ to each
  /// trainable parameter's .grad (defined afterwards, zeros if B = 0).
  /// per_example_loss: [B·K], rows i·K … i·K+K−1 are example i, whose
  /// gradient is the mean of its rows' gradients. Needs a forward pass
  /// recorded by record(). Throws std::invalid_argument on a bad shape or
  /// group_size, a missing recording, a trainable parameter that no rule
  /// covers, or a layer output modified in place.
  ClipResult clip_and_accumulate(const torch::Tensor& per_example_loss,
                                 int64_t group_size = 1);

  /// The trainable parameters, each once (tied weights appear once): give
  /// these to the optimizer.
  std::vector<torch::Tensor> parameters() const;
  /// Number of clipping groups (layers) L used by ClipMode::kPerLayer.
  int64_t num_layers() const { return num_groups_; }
  const ClippingOptions& options() const { return options_; }
  void set_options(ClippingOptions options) { options_ = std::move(options); }
  /// Receives the phases of every later clip_and_accumulate (not owned;
  /// null, the default, for none).
  void set_observer(EngineObserver* observer) { observer_ = observer; }
  /// How the rules' routes are chosen in later clip_and_accumulate calls
  /// (routes.h): the cost model unless set. Throws std::invalid_argument
  /// if repeats < 1. An observer sees each call's route in LayerCall::route.
  void set_route_policy(RoutePolicy policy);
  const RoutePolicy& route_policy() const { return route_policy_; }
  /// Bounds the per-example gradients (and rule state) that the norms phase
  /// keeps for the weighted sums, in bytes over all layer calls of one
  /// clip_and_accumulate. A call whose kept tensors would pass the bound
  /// frees them at once, and its weighted sum is then computed from A and G
  /// (for a convolution one batch weight gradient: slower, the same values
  /// up to rounding). Tensors under `min_counted_bytes` are neither counted
  /// nor freed (recomputing them costs more than they hold). Negative (the
  /// default): no bound but each rule's own per-layer limit.
  void set_max_kept_bytes(int64_t bytes,
                          int64_t min_counted_bytes = int64_t{1} << 20) {
    max_kept_bytes_ = bytes;
    min_counted_kept_bytes_ = min_counted_bytes;
  }
  int64_t max_kept_bytes() const { return max_kept_bytes_; }
  /// 1 (the default): one backward pass to the layer outputs; each layer's
  /// norms are taken as its output gradient arrives, and its A and G are
  /// released at once where its weighted sum will not read them (kept
  /// per-example gradients or rule state); the rest are held until the clip
  /// factors are known. 2: each layer's norms are taken as its output
  /// gradient arrives and its A and G released at once;
  /// then a second backward of Σᵢ cᵢ·lossᵢ over the kept graph computes the
  /// clipped sum as an ordinary weight gradient — about the non-private
  /// peak memory, for one more backward of time. Two passes clip the flat
  /// norm only and refuse parameters used by several calls (both throw
  /// std::invalid_argument from clip_and_accumulate). Throws
  /// std::invalid_argument unless passes is 1 or 2.
  void set_backward_passes(int passes);
  int backward_passes() const { return backward_passes_; }

 private:
  struct LayerEntry {
    std::string path;
    const LayerRule* rule = nullptr;
  };
  std::shared_ptr<torch::nn::Module> model_;
  ClippingOptions options_;
  EngineObserver* observer_ = nullptr;
  RoutePolicy route_policy_;
  int64_t max_kept_bytes_ = -1;
  int64_t min_counted_kept_bytes_ = int64_t{1} << 20;
  int backward_passes_ = 1;
  std::shared_ptr<const RuleRegistry> registry_;
  std::unique_ptr<detail::Recorder> recorder_;
  std::vector<std::pair<const torch::nn::Module*, LayerEntry>> layers_;
  // clip_and_accumulate's two ways: norms, factors and the clipped sum of
  // each parameter (indexed as params_) out.
  void one_pass(const at::Tensor& per_example_loss, int64_t group_size,
                std::vector<LayerCall>& calls,
                const std::vector<const LayerEntry*>& entries,
                const std::unordered_map<const c10::TensorImpl*, size_t>& index,
                at::Tensor& norms, at::Tensor& factors,
                std::vector<at::Tensor>& sums);
  void two_pass(const at::Tensor& per_example_loss, int64_t group_size,
                std::vector<LayerCall>& calls,
                const std::vector<const LayerEntry*>& entries,
                const std::unordered_map<const c10::TensorImpl*, size_t>& index,
                at::Tensor& norms, at::Tensor& factors,
                std::vector<at::Tensor>& sums);
  std::vector<torch::Tensor> params_;  // unique, all (incl. frozen)
  std::vector<int64_t> param_group_;   // clipping group per params_
  std::vector<bool> param_covered_;    // some rule covers it
  std::vector<std::string> param_names_;
  int64_t num_groups_ = 0;
};

}  // namespace dptrain::dp
