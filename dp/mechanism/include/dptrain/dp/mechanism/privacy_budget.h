#pragma once

// The privacy ledger of a run: the accountant's event history, and the check
// made before every step that the step keeps ε within the target
// (privacy invariant 6: stop *before* a step that would pass the target).

#include <cstdint>
#include <limits>

#include "dptrain/accountant/calibration.h"
#include "dptrain/accountant/event.h"
#include "dptrain/dp/archive/archive_fwd.h"

namespace dptrain::dp {

struct PrivacyBudgetOptions {
  double delta = 0;  ///< in (0, 1)
  /// > 0; +infinity means no target (ε is only reported).
  double target_epsilon = std::numeric_limits<double>::infinity();
  accountant::AccountantKind accountant = accountant::AccountantKind::kRdp;
  accountant::RdpOptions rdp;
  accountant::PrvOptions prv;
};

class PrivacyBudget {
 public:
  /// `history`: steps already taken (e.g. from a checkpoint). Throws
  /// std::invalid_argument naming the field unless delta is in (0, 1) and
  /// target_epsilon > 0.
  explicit PrivacyBudget(const PrivacyBudgetOptions& options,
                         accountant::EventHistory history = {});

  /// True when one more step with the event's (q, σ) keeps the guaranteed ε
  /// (RDP ε, or the PRV upper bound) ≤ target_epsilon; `step.steps` is
  /// ignored. The number of steps left is computed once per (q, σ) with
  /// accountant::max_steps and then counted down.
  bool allows_step(const accountant::PoissonSampledGaussian& step);

  /// Records steps that were taken with exactly these (q, σ, steps).
  void record(const accountant::PoissonSampledGaussian& event);

  /// The guaranteed ε of the history at options().delta (0 with no steps).
  double epsilon() const;

  const accountant::EventHistory& history() const { return history_; }
  int64_t steps() const { return accountant::total_steps(history_); }
  const PrivacyBudgetOptions& options() const { return options_; }

  /// Writes accountant kind, δ and the history (as accountant::to_json).
  void save(torch::serialize::OutputArchive& archive) const;
  /// Replaces the history with the checkpoint's. Throws std::runtime_error,
  /// changing nothing, when the accountant kind or δ differ or the history
  /// is malformed.
  void load(torch::serialize::InputArchive& archive);

 private:
  PrivacyBudgetOptions options_;
  accountant::EventHistory history_;
  // Steps left at (cached_rate_, cached_sigma_) as of cached_at_steps_.
  bool cache_valid_ = false;
  double cached_rate_ = 0;
  double cached_sigma_ = 0;
  int64_t cached_at_steps_ = 0;
  int64_t cached_steps_left_ = 0;
};

}  // namespace dptrain::dp
