// The privacy of a run as one value, in the spirit of JAX Privacy's
// execution plan: built and checked once from the configuration, logged at the
// start, written into the checkpoint and the summary. Every privacy number of
// the private loop (the step event, the noise scale, the budget check, the
// reported ε) reads it; nothing downstream recomputes q, σ or the sensitivity.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "dptrain/accountant/calibration.h"
#include "dptrain/accountant/event.h"
#include "dptrain/train/config.h"

namespace dptrain::train {

struct DpPlan {
  std::int64_t dataset_size = 0;         ///< N, privacy units
  std::int64_t expected_batch_size = 0;  ///< B (the mean with Poisson)
  double sample_rate = 0.0;              ///< q = B / N
  std::int64_t steps = 0;                ///< T, logical steps planned
  std::int64_t steps_per_epoch = 1;      ///< ⌈1/q⌉
  double noise_multiplier = 0.0;         ///< σ
  /// Where σ came from: "calibrated" (to target_epsilon at T steps),
  /// "given" (--noise-multiplier) or "checkpoint" (a resumed run keeps its σ).
  std::string noise_multiplier_source;
  double max_grad_norm = 0.0;  ///< C
  bool normalized = false;     ///< clipped gradients divided by C
  /// The bound on one unit's contribution to the clipped sum, as the
  /// engine reports it (C, or 1 when normalized); the noise is σ times it.
  double sensitivity = 0.0;
  std::string clipping;  ///< "flat" or "per-layer"
  std::string sampler;   ///< "poisson" or "shuffle"
  accountant::AccountantKind accountant = accountant::AccountantKind::kRdp;
  double delta = 0.0;
  std::optional<double> target_epsilon;  ///< absent: ε is only reported
  /// What adjacency protects, e.g. "one example".
  std::string privacy_unit;
  bool seeded = false;  ///< reproducible batches and noise: not for release

  /// The accountant's event of one logical step: (q, σ, 1).
  accountant::PoissonSampledGaussian step_event() const {
    return {sample_rate, noise_multiplier, 1};
  }
  /// σ · sensitivity: the standard deviation of the noise on the clipped sum.
  double noise_stddev() const { return noise_multiplier * sensitivity; }

  /// The plan as a JSON object text (the checkpoint's "plan" entry and the
  /// summary's).
  std::string to_json() const;
  /// The plan line of the log; `noise` and `sampler_name` are the names of
  /// the noise source and the sampler built for it.
  std::string describe(const std::string& noise,
                       const std::string& sampler_name) const;
};

/// Throws std::invalid_argument when the training set is empty or smaller
/// than --batch-size.
void check_dataset_size(const TrainConfig& config, std::int64_t dataset_size);

/// Builds and checks the plan of a run over `dataset_size` units (config
/// validated before). σ is `resumed_noise_multiplier` when given, else
/// calibrated to config.target_epsilon at T steps, else
/// config.noise_multiplier. `sensitivity` comes from the engine. Throws
/// std::invalid_argument naming the flag or value when the data set is
/// empty, the batch is larger than it, or σ or the sensitivity is not
/// finite and positive.
DpPlan make_dp_plan(const TrainConfig& config, std::int64_t dataset_size,
                    double sensitivity, const std::string& privacy_unit,
                    std::optional<double> resumed_noise_multiplier = {});

}  // namespace dptrain::train
