// The f-DP one-run audit of Mahloujifar, Melis & Chaudhuri, "Auditing
// f-Differential Privacy in One Run" (ICML 2025; arXiv:2410.22235).
#pragma once

#include <functional>

#include "dptrain/audit/guess_outcome.h"

namespace dptrain::audit {

/// f̄⁻¹ of a tradeoff curve f: the inverse of its blow-up f̄(x) = 1 − f(x),
/// a map of [0, 1] into [0, 1] (where f̄ is flat, the smallest preimage).
using InverseBlowUp = std::function<double(double)>;

/// f̄⁻¹ of μ-GDP, f(x) = Φ(Φ⁻¹(1 − x) − μ): y ↦ Φ(Φ⁻¹(y) − μ).
/// Throws std::invalid_argument unless μ >= 0 is finite.
InverseBlowUp gdp_inverse_blow_up(double mu);

/// f̄⁻¹ of (ε, δ)-DP, f(x) = max(0, 1 − δ − e^ε x, e^−ε (1 − δ − x)):
/// y ↦ max(0, (y − δ) e^−ε, 1 − δ − e^ε (1 − y)).
/// Throws std::invalid_argument unless ε >= 0 is finite and 0 <= δ < 1.
InverseBlowUp approx_dp_inverse_blow_up(double epsilon, double delta);

/// True when the paper's test ("audit_rh_with_cap", the recursion for r and
/// h with abstentions) shows that under f-DP the probability of v or more
/// correct guesses out of r is below tau, i.e. f is rejected at level tau.
/// With c = v, c' = r: start r_c = tau·c/m, h_c = tau·(c' − c)/m, and for
/// i = c − 1, …, 0
///   h_i = max(h_{i+1}, f̄⁻¹(r_{i+1})),
///   r_i = r_{i+1} + i/(c' − i) · (h_i − h_{i+1});
/// reject when r_0 + h_0 > c'/m. Both r and h only grow, so the loop stops
/// as soon as the sum passes c'/m or h stops changing. The comparison keeps
/// a relative margin of 1e-9 against rounding (on the safe side).
/// Throws std::invalid_argument on a bad outcome or unless 0 < tau <= 1.
bool fdp_rejects(const GuessOutcome& outcome,
                 const InverseBlowUp& inverse_blow_up, double tau);

/// The GDP bound: the largest μ (to options.tolerance) whose μ-GDP curve
/// fdp_rejects at level options.alpha, and the ε that μ gives at
/// options.delta (gdp_epsilon). The ε is a lower bound on the run's ε(δ)
/// only if its privacy curve is a Gaussian one (the family tested); as a
/// refutation of an (ε, δ) claim use fdp_epsilon_lower_bound or
/// one_run_epsilon_lower_bound.
struct GdpLowerBound {
  double mu = 0.0;       ///< 0 when μ = 0 itself is not rejected
  double epsilon = 0.0;  ///< gdp_epsilon(mu, options.delta)
};

/// Bisection on μ after doubling an upper end from 1 (at most to 64); the
/// returned μ was tested and rejected. Throws std::invalid_argument on a
/// bad outcome or options (δ must be in (0, 1) here).
GdpLowerBound gdp_lower_bound(const GuessOutcome& outcome,
                              const LowerBoundOptions& options);

/// The largest ε (to options.tolerance) whose (ε, options.delta)-DP curve
/// fdp_rejects at level options.alpha: the same test with f = f_{ε,δ}, so a
/// refutation of (ε, δ)-DP that needs no assumption on the curve's shape.
/// 0 when ε = 0 is not rejected. Throws std::invalid_argument on a bad
/// outcome or options.
double fdp_epsilon_lower_bound(const GuessOutcome& outcome,
                               const LowerBoundOptions& options);

}  // namespace dptrain::audit
