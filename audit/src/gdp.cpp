#include "dptrain/audit/gdp.h"

#include <cmath>

#include "numeric.h"

namespace dptrain::audit {

using detail::fail;
using detail::fmt;

double gdp_delta(double mu, double epsilon) {
  detail::check_nonnegative(mu, "mu");
  detail::check_nonnegative(epsilon, "epsilon");
  if (mu == 0.0) return 0.0;
  // δ = A − B with A = Φ(−(ε/μ − μ/2)), B = e^ε Φ(−(ε/μ + μ/2)) <= A;
  // A·(1 − B/A) with B/A in log space keeps both tails and large ε finite.
  const double log_a = detail::log_norm_sf(epsilon / mu - mu / 2.0);
  const double log_b = epsilon + detail::log_norm_sf(epsilon / mu + mu / 2.0);
  if (!(log_b < log_a)) return 0.0;
  return std::exp(log_a) * -std::expm1(log_b - log_a);
}

double gdp_epsilon(double mu, double delta) {
  detail::check_nonnegative(mu, "mu");
  if (!(delta > 0.0 && delta < 1.0)) {
    fail("delta must be in (0, 1), got " + fmt(delta));
  }
  if (gdp_delta(mu, 0.0) <= delta) return 0.0;
  // Invariant: δ(lo) > delta >= δ(hi); δ(ε) decreases in ε.
  double lo = 0.0;
  double hi = 1.0;
  while (gdp_delta(mu, hi) > delta) {
    lo = hi;
    hi *= 2.0;
  }
  while (hi - lo > 1e-12 * std::max(1.0, hi)) {
    const double mid = lo + 0.5 * (hi - lo);
    if (gdp_delta(mu, mid) > delta) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return hi;
}

}  // namespace dptrain::audit
