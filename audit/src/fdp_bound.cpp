#include "dptrain/audit/fdp_bound.h"

#include <algorithm>
#include <cmath>

#include "dptrain/audit/gdp.h"
#include "numeric.h"

namespace dptrain::audit {

using detail::fail;
using detail::fmt;

InverseBlowUp gdp_inverse_blow_up(double mu) {
  detail::check_nonnegative(mu, "mu");
  return [mu](double y) {
    if (!(y > 0.0)) return 0.0;
    if (!(y < 1.0)) return 1.0;
    return detail::norm_cdf(detail::norm_quantile(y) - mu);
  };
}

InverseBlowUp approx_dp_inverse_blow_up(double epsilon, double delta) {
  detail::check_nonnegative(epsilon, "epsilon");
  if (!(delta >= 0.0 && delta < 1.0)) {
    fail("delta must be in [0, 1), got " + fmt(delta));
  }
  // f̄(x) = min(1, δ + e^ε x, 1 − e^−ε (1 − δ − x)) is the smaller of two
  // increasing lines, so its inverse is the larger of their inverses.
  const double e = std::exp(epsilon);
  return [e, delta](double y) {
    const double y1 = std::min(y, 1.0);
    return std::max({0.0, (y1 - delta) / e, 1.0 - delta - e * (1.0 - y1)});
  };
}

bool fdp_rejects(const GuessOutcome& outcome,
                 const InverseBlowUp& inverse_blow_up, double tau) {
  validate(outcome);
  if (!(tau > 0.0 && tau <= 1.0)) {
    fail("tau must be in (0, 1], got " + fmt(tau));
  }
  if (!inverse_blow_up) fail("inverse_blow_up must be set, got an empty one");
  const auto m = static_cast<double>(outcome.canaries);
  const auto guesses = static_cast<double>(outcome.guesses);
  const std::int64_t c = outcome.correct;
  // The sum r + h only grows; rejection is r_0 + h_0 > c'/m. The margin
  // keeps rounding from rejecting an outcome that sits on the boundary.
  const double limit = guesses / m * (1.0 + 1e-9);
  double r = tau * static_cast<double>(c) / m;
  double h = tau * (guesses - static_cast<double>(c)) / m;
  for (std::int64_t i = c - 1; i >= 0; --i) {
    if (r + h > limit) return true;
    const double h_next = std::max(h, inverse_blow_up(r));
    if (h_next == h) break;  // (r, h) is a fixed point from here on
    const auto di = static_cast<double>(i);
    r += di / (guesses - di) * (h_next - h);
    h = h_next;
  }
  return r + h > limit;
}

GdpLowerBound gdp_lower_bound(const GuessOutcome& outcome,
                              const LowerBoundOptions& options) {
  validate(outcome);
  detail::check_options(options, /*delta_positive=*/true);
  GdpLowerBound bound;
  bound.mu = detail::largest_rejected(
      [&](double mu) {
        return fdp_rejects(outcome, gdp_inverse_blow_up(mu), options.alpha);
      },
      options.tolerance, 64.0);
  bound.epsilon = gdp_epsilon(bound.mu, options.delta);
  return bound;
}

double fdp_epsilon_lower_bound(const GuessOutcome& outcome,
                               const LowerBoundOptions& options) {
  validate(outcome);
  detail::check_options(options, /*delta_positive=*/false);
  return detail::largest_rejected(
      [&](double epsilon) {
        return fdp_rejects(outcome,
                           approx_dp_inverse_blow_up(epsilon, options.delta),
                           options.alpha);
      },
      options.tolerance, 64.0);
}

}  // namespace dptrain::audit
