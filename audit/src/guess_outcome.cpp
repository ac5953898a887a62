#include "dptrain/audit/guess_outcome.h"

#include <cmath>
#include <string>

#include "numeric.h"

namespace dptrain::audit {

using detail::fail;
using detail::fmt;

void validate(const GuessOutcome& o) {
  if (o.canaries < 1) {
    fail("canaries must be >= 1, got " + std::to_string(o.canaries));
  }
  if (o.guesses < 0 || o.guesses > o.canaries) {
    fail("guesses must be in [0, canaries = " + std::to_string(o.canaries) +
         "], got " + std::to_string(o.guesses));
  }
  if (o.correct < 0 || o.correct > o.guesses) {
    fail("correct must be in [0, guesses = " + std::to_string(o.guesses) +
         "], got " + std::to_string(o.correct));
  }
}

namespace detail {

void check_options(const LowerBoundOptions& o, bool delta_positive) {
  if (delta_positive) {
    if (!(o.delta > 0.0 && o.delta < 1.0)) {
      fail("delta must be in (0, 1), got " + fmt(o.delta));
    }
  } else if (!(o.delta >= 0.0 && o.delta < 1.0)) {
    fail("delta must be in [0, 1), got " + fmt(o.delta));
  }
  if (!(o.alpha > 0.0 && o.alpha < 1.0)) {
    fail("alpha must be in (0, 1), got " + fmt(o.alpha));
  }
  if (!(o.tolerance > 0.0 && o.tolerance <= 0.1)) {
    fail("tolerance must be in (0, 0.1], got " + fmt(o.tolerance));
  }
}

void check_nonnegative(double value, const char* name) {
  if (!(value >= 0.0) || !std::isfinite(value)) {
    fail(std::string(name) + " must be finite and >= 0, got " + fmt(value));
  }
}

double largest_rejected(const std::function<bool(double)>& rejected,
                        double tolerance, double cap) {
  if (!rejected(0.0)) return 0.0;
  double lo = 0.0;
  double hi = 1.0;
  while (rejected(hi)) {
    lo = hi;
    if (hi >= cap) return hi;
    hi *= 2.0;
  }
  // Invariant: rejected(lo), !rejected(hi).
  while (hi - lo > tolerance) {
    const double mid = lo + 0.5 * (hi - lo);
    if (rejected(mid)) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace detail
}  // namespace dptrain::audit
