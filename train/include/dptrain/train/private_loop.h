// The private training loop shared by every task (image classification,
// language modelling): Poisson sampling → physical chunks → per-example
// clipping by the engine → Gaussian noise once per logical step, divided by
// the expected batch size → optimizer → EMA → accountant (stopping before the
// target ε would be exceeded) → checkpoints (with RNG and sampler state) and
// per-epoch metrics. A task only says how to compute the per-example losses
// of a chunk of indices and what to report after each epoch.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dptrain/accountant/event.h"
#include "dptrain/dp/archive/archive_fwd.h"
#include "dptrain/train/config.h"
#include "dptrain/train/dp_plan.h"

namespace torch::nn {
class Module;
}
namespace dptrain::dp {
class GradientEngine;
class NoiseGenerator;
}  // namespace dptrain::dp

namespace dptrain::train {

class Communicator;

class Optimization;

/// Running statistics of the sampled examples since the last epoch end.
/// Computed from private data without noise: NOT PRIVATE (log only).
struct LoopStats {
  double loss_sum = 0.0;     ///< Σ per-example loss (views averaged)
  std::int64_t count = 0;    ///< examples
  std::int64_t correct = 0;  ///< rows predicted right (classification)
};

/// What the loop tells a task at the end of an epoch.
struct EpochContext {
  std::int64_t epoch = 0;  ///< 1-based
  std::int64_t step = 0;   ///< logical steps done
  LoopStats stats;
  double epsilon = 0.0;  ///< spent so far
  double seconds = 0.0;  ///< since run() started
};

/// What a task reports for an epoch: one log line and one JSON object (a
/// line of the metrics file; empty = none).
struct EpochOutput {
  std::string line;
  std::string metrics_json;
};

/// The task-specific half of a run.
struct PrivateTask {
  std::int64_t dataset_size = 0;  ///< N (privacy units)
  std::int64_t group_size = 1;    ///< rows per unit (augmentation views K)
  /// The privacy unit, for the plan line, e.g. "one example" or "one
  /// sequence of 128 bytes".
  std::string privacy_unit = "one example";
  /// Extra fields (a JSON object text) that a resumed run must match, e.g.
  /// the sequence length; empty = none.
  std::string identity_extra;
  /// What identifies the training data (a JSON object text: size, shapes,
  /// a hash of the bytes, the class subset); a resumed run must match it.
  /// Empty = not checked.
  std::string data_fingerprint;
  /// Per-row losses [chunk.size()·group_size] of the units at `chunk`,
  /// computed by the model's forward pass; called while the engine records.
  /// May add to `stats`.
  std::function<at::Tensor(const std::vector<std::int64_t>& chunk,
                           LoopStats& stats)>
      losses;
  /// After each epoch's accounting (evaluation, the log line, metrics).
  std::function<EpochOutput(const EpochContext&)> end_epoch;
  /// Task state kept in checkpoints (e.g. an augmentation RNG); written to
  /// and read from the checkpoint's top-level archive. Optional.
  std::function<void(torch::serialize::OutputArchive&)> save;
  std::function<void(torch::serialize::InputArchive&)> load;
};

/// What run() did.
struct LoopResult {
  DpPlan plan;             ///< the run's privacy, as planned and logged
  std::int64_t steps = 0;  ///< logical steps of the model (all sessions)
  /// Every logical step ever executed (the ledger's count, >= steps): steps
  /// lost in a crash and run again are counted twice. ε is computed from
  /// these.
  std::int64_t steps_accounted = 0;
  /// Seeded run (reproducible batches and noise): not for release.
  bool seeded = false;
  double sample_rate = 0.0;       ///< q = batch_size / N
  double noise_multiplier = 0.0;  ///< σ (calibrated, given or resumed)
  double epsilon = 0.0;           ///< by the configured accountant
  double epsilon_rdp = 0.0;       ///< the same run by RDP
  double epsilon_prv_upper =
      0.0;  ///< by PRV (upper bound); NaN if not computed
  double delta = 0.0;
  bool stopped_by_budget = false;
  std::string
      privacy_note;  ///< non-empty when the accountant's assumptions fail
  double wall_seconds = 0.0;
};

/// The model-independent private step loop.
class PrivateLoop {
 public:
  /// Moves the model to config.device and builds the engine over its
  /// trainable parameters (freeze parameters before this). A TrainConfig
  /// passed here is validated on the way in (std::invalid_argument naming
  /// the flag).
  PrivateLoop(std::shared_ptr<torch::nn::Module> model, ValidConfig config);
  ~PrivateLoop();
  PrivateLoop(const PrivateLoop&) = delete;
  PrivateLoop& operator=(const PrivateLoop&) = delete;

  /// Trains as config says. With config.resume, continues from
  /// config.checkpoint (refusing one of another run or model, loading
  /// nothing then). Throws std::invalid_argument for an empty data set or a
  /// batch larger than it.
  LoopResult run(const PrivateTask& task);

  c10::Device device() const;
  const TrainConfig& config() const;
  dp::GradientEngine& engine();
  /// The optimizer/EMA bundle of the current or last run; null before run().
  Optimization* optimization();
  /// ε spent so far at config.delta by config.accountant.
  double epsilon() const;
  const accountant::EventHistory& privacy_history() const;

  /// The noise source of the next run() instead of the one the config
  /// implies (seeded or secure): for tests and audits. Its name() is logged.
  void set_noise_generator(std::unique_ptr<dp::NoiseGenerator> generator);

  /// Makes the next run() one rank of a data-parallel run (distributed.h):
  /// the batch shared between the ranks, the clipped sums all-reduced, noise
  /// drawn on rank 0 only, outputs written by rank 0 only.
  void set_communicator(std::shared_ptr<Communicator> communicator);

  /// Receives the plan, notes and per-epoch lines (default: standard output).
  std::function<void(const std::string&)> log;

 private:
  struct State;
  class Run;  // one run(), phase by phase
  std::unique_ptr<State> state_;
};

/// What every artefact of a seeded run says (checkpoint, summary, log).
inline constexpr char kSeededNotice[] = "seeded: reproducible, not for release";

/// The privacy half of a run's summary, as a JSON object text: ε (RDP, PRV,
/// the configured accountant's, all from steps_accounted), δ, σ, q, steps,
/// steps_accounted, accountant, sampler, the budget stop, seeded and what is
/// safe to publish, and the privacy note when the accountant's assumptions
/// fail.
std::string privacy_summary_json(const LoopResult& result,
                                 const TrainConfig& config);

/// `v` with `precision` digits after the point (log lines).
std::string format_fixed(double v, int precision = 4);

}  // namespace dptrain::train
