#pragma once
/// The cost of privacy on this machine: the median time (and, per process,
/// the peak memory) of one non-private training step against one DP step on
/// the same model and batch, and optionally the microbatch oracle's step.
///
///   non-private: forward, mean loss, backward, optimizer step.
///   dp:          forward under GradientEngine::record(), per-example loss,
///                clip_and_accumulate, finalize_noisy_gradient, optimizer step.
///   oracle:      microbatch_clip_and_accumulate (one example at a time),
///                finalize_noisy_gradient, optimizer step.
///
/// Inputs and labels are random (fixed seed): the cost does not depend on
/// their values.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dptrain/dp/clipping/routes.h"
#include "dptrain/dp/layers/autocast.h"

namespace dptrain::bench {

/// One kind of training step.
enum class StepVariant { kNonPrivate, kDp, kOracle };

/// "nonprivate", "dp" or "oracle".
std::string to_string(StepVariant variant);
/// Inverse of to_string; throws std::invalid_argument naming the value.
StepVariant parse_step_variant(const std::string& name);

/// What to measure.
struct StepBenchmarkOptions {
  /// "seq" (SequenceMlp: width 256, 4 blocks, vocab 256, tokens [B, seq_len]),
  /// a Griffin / Hawk config ("griffin-tiny", "hawk-25m", ...; tokens
  /// [B, seq_len]), a diffusion UNet ("unet-small", "unet-dpdm", ...: the
  /// EDM loss of B rows, each with its own σ, noise and label, K = 1) or any
  /// image model of models::make_model ("cnn": 1×28×28, "wrn-16-4":
  /// 3×32×32, ...), fed images of the model's default input size.
  std::string model = "cnn";
  int64_t batch_size = 256;  ///< B, >= 1
  int64_t seq_len = 128;     ///< T of the "seq" model, >= 1
  int64_t steps = 10;        ///< timed steps per variant, >= 1
  int64_t warmup_steps = 2;  ///< untimed steps per variant first, >= 0
  /// Variants to run, each once (order irrelevant); steps are interleaved
  /// (one of each per round) so that load changes hit all alike.
  std::vector<StepVariant> variants = {StepVariant::kNonPrivate,
                                       StepVariant::kDp};
  double noise_multiplier = 1.0;  ///< σ of the DP steps, >= 0
  double max_grad_norm = 1.0;     ///< C of the DP steps, > 0
  /// SecureNoise (ChaCha20) instead of SeededNoise for the DP steps.
  bool secure_noise = false;
  uint64_t seed = 0;  ///< initialisation, data and seeded noise
  /// L for logical_ratio: a logical batch of L examples is L/B physical
  /// gradient phases and one update (noise, optimizer); 0 = not reported,
  /// else a multiple of batch_size.
  int64_t logical_batch_size = 0;
  /// Griffin / Hawk only: LoRA adapters of this rank on the blocks' Linear
  /// layers, the base frozen, in both variants (0 = full fine-tuning).
  int64_t lora_rank = 0;
  c10::Device device = c10::Device(c10::kCPU);
  /// How the DP step's rules pick their routes (dp/clipping/routes.h). With
  /// kMeasure the search runs in the first DP step (a warm-up step unless
  /// warmup_steps is 0).
  dp::RouteSearch routes = dp::RouteSearch::kCostModel;
  /// Non-empty: routes are read from this cache file (kFixed, kMeasure)
  /// and, with kMeasure, new ones written to it.
  std::string route_cache;
  /// >= 0: GradientEngine::set_max_kept_bytes(max_kept_mb MiB) for the DP
  /// step; -1: no bound.
  int64_t max_kept_mb = -1;
  /// GradientEngine::set_backward_passes for the DP step: 1 or 2.
  int backward_passes = 1;
  /// kBF16: every variant's forward under autocast to bf16 (the model's
  /// output upcast to float32 before its loss); with backward_passes 2 the
  /// engine refuses the DP step.
  dp::MixedPrecision mixed_precision = dp::MixedPrecision::kNone;
};

/// Throws std::invalid_argument naming the field and value of the first
/// out-of-range option (the model name is checked when it is built).
void validate(const StepBenchmarkOptions& options);

/// Medians in milliseconds; a variant that was not run is absent.
struct StepBenchmarkResult {
  std::string model;
  int64_t batch_size = 0;
  int64_t steps = 0;
  int64_t parameters = 0;  ///< trainable parameters
  int threads = 0;         ///< LibTorch intra-op threads during the run
  std::string device;
  std::optional<double> nonprivate_ms;
  std::optional<double> dp_ms;
  std::optional<double> oracle_ms;
  std::optional<double> ratio;         ///< dp_ms / nonprivate_ms
  std::optional<double> oracle_ratio;  ///< oracle_ms / nonprivate_ms
  /// Each step split where a logical step splits: the gradient phase
  /// (forward, backward and, for DP, per-example clipping and accumulation;
  /// repeated for every physical batch) and the update (for DP: noise and
  /// division by the expected batch size; then the optimizer; once per
  /// logical step). Medians of each part.
  std::optional<double> nonprivate_gradient_ms;
  std::optional<double> nonprivate_update_ms;
  std::optional<double> dp_gradient_ms;
  std::optional<double> dp_update_ms;
  /// dp_gradient_ms / nonprivate_gradient_ms: the forward+backward cost of
  /// privacy per example.
  std::optional<double> gradient_ratio;
  /// (k·dp_gradient + dp_update) / (k·nonprivate_gradient +
  /// nonprivate_update), k = logical_batch_size / batch_size: a whole
  /// logical step with gradient accumulation; set when logical_batch_size > 0.
  std::optional<double> logical_ratio;
  /// Resident memory after the model and batch were built, before any step
  /// (bytes; 0 where /proc/self/statm is unavailable).
  int64_t baseline_rss_bytes = 0;
  /// Peak resident memory of the whole process so far (getrusage
  /// ru_maxrss, bytes). Meaningful per variant only when one variant runs
  /// in its own process.
  int64_t peak_rss_bytes = 0;
  /// The last DP step's route of each layer call that had a choice of
  /// routes (LayerRule::routes): {module path, route}, in call order.
  std::vector<std::pair<std::string, std::string>> routes;
};

/// Builds the model and batch, warms up, and times the variants. Throws
/// std::invalid_argument for bad options or an unknown model name.
StepBenchmarkResult benchmark_step(const StepBenchmarkOptions& options);

/// Where the time of each step goes: median milliseconds per phase and, for
/// the DP step, per layer rule. The DP step is the engine's own
/// clip_and_accumulate, timed through a dp::EngineObserver (the device
/// synchronised around each phase and rule, which adds a little to the
/// total). A layer's sums_ms is its rule's weighted_sums; where per-example
/// gradients were kept (`kept`), their product is timed in the phase
/// "weighted sums" instead.
struct StepProfile {
  struct Phase {
    std::string variant;  ///< "nonprivate" or "dp"
    std::string name;     ///< e.g. "forward", "backward", "norms"
    double ms = 0;
  };
  struct Layer {
    std::string path;          ///< module path, e.g. "blocks.0.conv1"
    std::string type;          ///< module type name
    std::string input_shape;   ///< the recorded activation's sizes
    std::string output_shape;  ///< the layer output's sizes
    double norms_ms = 0;       ///< the rule's squared_norms
    /// Σ cᵢ gᵢ: from kept per-example gradients (a [B]×[B, |θ|] product),
    /// or the rule's weighted_sums (a batch weight gradient).
    double sums_ms = 0;
    bool kept = false;  ///< per-example gradients were materialised and kept
    std::string route;  ///< LayerCall::route ("" where the rule has none)
  };
  std::vector<Phase> phases;
  std::vector<Layer> layers;
};

/// Profiles the non-private and the DP step (options.variants is ignored).
/// Throws as benchmark_step.
StepProfile profile_step(const StepBenchmarkOptions& options);

/// The model, the fixed batch and the steps benchmark_step times; exposed so
/// that tests can check that the timed DP step really clips and adds noise.
class StepRunner {
 public:
  /// Validates `options` and builds everything on options.device.
  explicit StepRunner(const StepBenchmarkOptions& options);
  ~StepRunner();
  StepRunner(const StepRunner&) = delete;
  StepRunner& operator=(const StepRunner&) = delete;

  /// Milliseconds of the two parts of one step (see StepBenchmarkResult).
  struct Times {
    double gradient_ms = 0;
    double update_ms = 0;
  };
  /// One full step of the variant (grads dropped first), timed in its two
  /// parts (the device synchronised after each).
  Times run(StepVariant variant);
  /// Drops the grads, then leaves Σᵢ clip(gᵢ) in each trainable .grad by
  /// the engine (no noise, no update): the first half of the DP step.
  void dp_clip();
  /// The same sum by the microbatch oracle.
  void oracle_clip();
  /// Drops the grads, then leaves the non-private mean-loss gradient.
  void nonprivate_backward();

  /// Times one non-private and one DP step phase by phase into `profile`
  /// (appending one entry per phase and per layer call).
  void profile_once(StepProfile& profile);

  /// The trainable parameters, each once.
  std::vector<at::Tensor> parameters() const;
  /// The route each layer call with a choice took in the last DP step run
  /// by run() or dp_clip(): {module path, route}.
  std::vector<std::pair<std::string, std::string>> last_routes() const;
  int64_t num_parameters() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// Current resident set size in bytes (/proc/self/statm), 0 if unknown.
int64_t current_rss_bytes();
/// Peak resident set size of this process in bytes (getrusage).
int64_t peak_rss_bytes();

}  // namespace dptrain::bench
