#include "dptrain/audit/one_run_bound.h"

#include <algorithm>
#include <boost/math/special_functions/beta.hpp>
#include <boost/math/special_functions/gamma.hpp>
#include <cmath>

#include "numeric.h"

namespace dptrain::audit {

using detail::fail;
using detail::fmt;

double one_run_p_value(const GuessOutcome& outcome, double epsilon,
                       double delta) {
  validate(outcome);
  detail::check_nonnegative(epsilon, "epsilon");
  if (!(delta >= 0.0 && delta < 1.0)) {
    fail("delta must be in [0, 1), got " + fmt(delta));
  }
  const auto m = static_cast<double>(outcome.canaries);
  const auto r = static_cast<double>(outcome.guesses);
  const auto v = static_cast<double>(outcome.correct);
  if (outcome.correct == 0) return 1.0;
  // W ~ Binomial(r, q), q = e^ε/(1 + e^ε): the accuracy of ε-randomised
  // response. log q and log(1 − q) straight from ε, so 1 − q keeps its
  // digits when ε is large.
  const double log_q = -std::log1p(std::exp(-epsilon));
  const double log_1mq = -epsilon + log_q;
  const double one_minus_q = std::exp(log_1mq);
  // β = P[W >= v] = I_q(v, r − v + 1) = 1 − I_{1−q}(r − v + 1, v).
  const double beta = boost::math::ibetac(r - v + 1.0, v, one_minus_q);
  if (delta == 0.0) return beta;
  // max over 1 <= i <= v of P[v − i <= W <= v − 1] / i, the pmf summed
  // downwards from k = v − 1. No partial sum exceeds P[W <= v − 1], so the
  // loop stops once that total over i cannot beat the best ratio.
  const double below = boost::math::ibeta(r - v + 1.0, v, one_minus_q);
  double k = v - 1.0;
  double log_pmf = boost::math::lgamma(r + 1.0) - boost::math::lgamma(k + 1.0) -
                   boost::math::lgamma(r - k + 1.0) + k * log_q +
                   (r - k) * log_1mq;
  const double log_odds = log_1mq - log_q;
  double sum = 0.0;
  double best = 0.0;
  for (std::int64_t i = 1; i <= outcome.correct; ++i) {
    sum += std::exp(log_pmf);
    best = std::max(best, sum / static_cast<double>(i));
    if (below / static_cast<double>(i + 1) <= best) break;
    // pmf(k − 1) / pmf(k) = k / (r − k + 1) · (1 − q) / q
    log_pmf += std::log(k / (r - k + 1.0)) + log_odds;
    k -= 1.0;
  }
  return std::min(1.0, beta + 2.0 * m * delta * best);
}

double one_run_epsilon_lower_bound(const GuessOutcome& outcome,
                                   const LowerBoundOptions& options) {
  validate(outcome);
  detail::check_options(options, /*delta_positive=*/false);
  // At ε = 64, q rounds to 1 and the p-value is 1: the cap is never reached.
  return detail::largest_rejected(
      [&](double epsilon) {
        return one_run_p_value(outcome, epsilon, options.delta) <=
               options.alpha;
      },
      options.tolerance, 64.0);
}

}  // namespace dptrain::audit
