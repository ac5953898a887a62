// A one-run audit from canary scores: guess "in" for the k+ highest scores
// and "out" for the k− lowest, try several (k+, k−), keep the best bound.
#pragma once

#include <cstdint>
#include <vector>

#include "dptrain/audit/guess_outcome.h"

namespace dptrain::audit {

/// How many canaries the auditor guesses "in" (highest scores) and "out"
/// (lowest scores); k+ + k− <= m.
struct GuessChoice {
  std::int64_t k_plus = 0;
  std::int64_t k_minus = 0;
};

/// The outcome of guessing with `choice`: canaries ranked by score
/// (scores[i] for canary i; higher = more likely included), ties broken by
/// index (never by inclusion), the k+ last guessed "in", the k− first
/// guessed "out". `included[i]` is canary i's coin. Throws
/// std::invalid_argument when the sizes differ, there are no canaries, a
/// score is not finite, or k+ or k− is negative or k+ + k− > m.
GuessOutcome count_correct_guesses(const std::vector<double>& scores,
                                   const std::vector<bool>& included,
                                   const GuessChoice& choice);

/// k+ = k− = k for k = 10, 20, 50, 100, 200, 500, … with 2k <= m; for
/// m < 20 the single choice k = ⌊m/2⌋ (nothing when m < 2).
std::vector<GuessChoice> default_guess_choices(std::int64_t canaries);

enum class AuditBound {
  kOneRun,       ///< Steinke et al.: one_run_epsilon_lower_bound
  kGdp,          ///< Mahloujifar et al. against μ-GDP: gdp_lower_bound
  kFdpApproxDp,  ///< Mahloujifar et al. against f_{ε,δ}:
                 ///< fdp_epsilon_lower_bound
};

struct CanaryAuditOptions {
  AuditBound bound = AuditBound::kOneRun;
  /// The (k+, k−) tried; empty means default_guess_choices(m).
  std::vector<GuessChoice> choices;
  /// delta, alpha (the family-wise level) and tolerance; see
  /// LowerBoundOptions.
  LowerBoundOptions bound_options;
};

struct CanaryAudit {
  double epsilon = 0.0;  ///< the best lower bound over the choices
  double mu = 0.0;       ///< its μ for AuditBound::kGdp, else 0
  GuessChoice choice;    ///< the choice that gave it (the first on ties)
  GuessOutcome outcome;  ///< that choice's (m, r, v)
  std::int64_t choices_tried = 0;
  double level_per_choice = 0.0;  ///< alpha / choices_tried
};

/// Counts the correct guesses of each choice and computes its bound at level
/// alpha / n for n choices (Bonferroni): the best of the n bounds is then
/// wrong with probability at most alpha even though the choice is made after
/// seeing the scores and the coins. Throws std::invalid_argument on bad
/// scores or coins (see count_correct_guesses), bad options, or when there
/// is no choice (m < 2 with the defaults).
CanaryAudit audit_canaries(const std::vector<double>& scores,
                           const std::vector<bool>& included,
                           const CanaryAuditOptions& options);

}  // namespace dptrain::audit
