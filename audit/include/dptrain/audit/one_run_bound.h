// The (ε, δ) one-run audit of Steinke, Nasr & Jagielski, "Privacy Auditing
// with One (1) Training Run" (NeurIPS 2023).
#pragma once

#include "dptrain/audit/guess_outcome.h"

namespace dptrain::audit {

/// The p-value of the hypothesis "training is (ε, δ)-DP" for the outcome:
/// an upper bound on P[V >= v] over every (ε, δ)-DP mechanism and every
/// auditor making r guesses (Steinke et al., Theorem 3.1):
///   P[V >= v] <= β + 2mδ · max_{1<=i<=v} P[v − i <= W < v] / i,
///   β = P[W >= v],  W ~ Binomial(r, e^ε / (1 + e^ε)),
/// clipped to 1, computed as the paper's Appendix D code does (δ = 0 leaves
/// the binomial tail). The binomial tail is Boost's regularised incomplete
/// beta; the δ term sums the pmf by its ratio recurrence in log space.
/// Throws std::invalid_argument on a bad outcome (see validate), unless
/// ε >= 0 is finite and 0 <= δ < 1.
double one_run_p_value(const GuessOutcome& outcome, double epsilon,
                       double delta);

/// The largest ε (to options.tolerance) whose claim (ε, options.delta) is
/// rejected at level options.alpha: one_run_p_value(outcome, ε, δ) <= alpha.
/// 0 when even ε = 0 is not rejected. Bisection, after doubling an upper
/// end from 1 until it is not rejected; the returned ε itself was tested and
/// rejected, so with probability >= 1 − alpha it is below the ε of every
/// (ε, δ) guarantee the training satisfies. Throws std::invalid_argument on
/// a bad outcome or options.
double one_run_epsilon_lower_bound(const GuessOutcome& outcome,
                                   const LowerBoundOptions& options);

}  // namespace dptrain::audit
