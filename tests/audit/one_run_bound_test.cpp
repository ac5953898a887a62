#include "dptrain/audit/one_run_bound.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "error_helpers.h"
#include "outcome.h"

namespace dptrain::audit {
namespace {

using dptrain::test_support::expect_error;

using testing::outcome;

double logistic(double eps) { return std::exp(eps) / (1.0 + std::exp(eps)); }

TEST(OneRunPValue, AllCorrectIsTheBinomialTopProbability) {
  // δ = 0, v = r: P[Binomial(r, q) >= r] = q^r.
  for (double eps : {0.0, 0.5, 1.0, 3.0}) {
    for (std::int64_t r : {1, 10, 100}) {
      const double q = logistic(eps);
      EXPECT_NEAR(one_run_p_value(outcome(1000, r, r), eps, 0.0),
                  std::pow(q, static_cast<double>(r)),
                  1e-13 * std::pow(q, static_cast<double>(r)))
          << "eps=" << eps << " r=" << r;
    }
  }
}

TEST(OneRunPValue, MatchesHandComputedDeltaTerm) {
  const double eps = 1.0;
  const double delta = 0.01;
  const double q = logistic(eps);
  // r = v = 1: β = q, the δ term is P[W = 0] / 1 = 1 − q.
  EXPECT_NEAR(one_run_p_value(outcome(1, 1, 1), eps, delta),
              q + 2.0 * 1 * delta * (1.0 - q), 1e-14);
  // r = v = 2, m = 5: β = q², δ term max(P[W = 1], (P[W = 1] + P[W = 0])/2).
  const double p1 = 2.0 * q * (1.0 - q);
  const double p0 = (1.0 - q) * (1.0 - q);
  EXPECT_NEAR(one_run_p_value(outcome(5, 2, 2), eps, delta),
              q * q + 2.0 * 5 * delta * std::max(p1, (p1 + p0) / 2.0), 1e-14);
  // A δ term that passes 1 is clipped.
  EXPECT_EQ(one_run_p_value(outcome(1000, 2, 2), eps, 0.5), 1.0);
}

TEST(OneRunPValue, MatchesDirectSumsOnAMidSizedCase) {
  // r = 60, v = 45, ε = 0.7, δ = 1e-3, m = 200; the binomial pmf from
  // lgamma, summed directly (no recurrence, no incomplete beta).
  const int r = 60;
  const int v = 45;
  const double q = logistic(0.7);
  auto pmf = [&](int k) {
    return std::exp(std::lgamma(r + 1.0) - std::lgamma(k + 1.0) -
                    std::lgamma(r - k + 1.0) + k * std::log(q) +
                    (r - k) * std::log1p(-q));
  };
  double beta = 0.0;
  for (int k = v; k <= r; ++k) beta += pmf(k);
  double best = 0.0;
  double sum = 0.0;
  for (int i = 1; i <= v; ++i) {
    sum += pmf(v - i);
    best = std::max(best, sum / i);
  }
  const double expected = beta + 2.0 * 200 * 1e-3 * best;
  EXPECT_NEAR(one_run_p_value(outcome(200, r, v), 0.7, 1e-3), expected,
              1e-12 * expected);
  EXPECT_NEAR(one_run_p_value(outcome(200, r, v), 0.7, 0.0), beta,
              1e-12 * beta);
}

TEST(OneRunPValue, NoCorrectGuessIsCertain) {
  EXPECT_EQ(one_run_p_value(outcome(10, 5, 0), 2.0, 1e-5), 1.0);
  EXPECT_EQ(one_run_p_value(outcome(10, 0, 0), 2.0, 0.0), 1.0);
}

TEST(OneRunEpsilonLowerBound, AllCorrectMatchesClosedForm) {
  // δ = 0, v = r: q^r = alpha at q = alpha^(1/r), ε = log(q / (1 − q)).
  for (std::int64_t r : {10, 100, 1000}) {
    LowerBoundOptions o;
    o.delta = 0.0;
    o.alpha = 0.05;
    o.tolerance = 1e-6;
    const double q = std::pow(0.05, 1.0 / static_cast<double>(r));
    const double exact = std::log(q / (1.0 - q));
    const double bound = one_run_epsilon_lower_bound(outcome(r, r, r), o);
    EXPECT_LE(bound, exact + 1e-12) << "r=" << r;
    EXPECT_GE(bound, exact - 2e-6) << "r=" << r;
  }
}

TEST(OneRunEpsilonLowerBound, ReturnedEpsilonIsRejectedAndTheNextIsNot) {
  LowerBoundOptions o;
  o.delta = 1e-5;
  o.alpha = 0.05;
  o.tolerance = 1e-6;
  const GuessOutcome g = outcome(1000, 200, 180);
  const double eps = one_run_epsilon_lower_bound(g, o);
  ASSERT_GT(eps, 1.0);
  EXPECT_LE(one_run_p_value(g, eps, o.delta), o.alpha);
  EXPECT_GT(one_run_p_value(g, eps + 2e-6, o.delta), o.alpha);
}

TEST(OneRunEpsilonLowerBound, DeltaAndStricterLevelsOnlyLowerIt) {
  LowerBoundOptions o;
  o.delta = 0.0;
  const GuessOutcome g = outcome(1000, 200, 180);
  const double pure = one_run_epsilon_lower_bound(g, o);
  o.delta = 1e-5;
  const double approx = one_run_epsilon_lower_bound(g, o);
  o.alpha = 0.001;
  const double strict = one_run_epsilon_lower_bound(g, o);
  EXPECT_LT(approx, pure);
  EXPECT_LT(strict, approx);
  EXPECT_GT(strict, 0.0);
}

TEST(OneRunEpsilonLowerBound, ChanceLevelGuessingGivesZero) {
  // At ε = 0 the p-value of v <= r/2 is P[Binomial(r, 1/2) >= v] >= 1/2.
  LowerBoundOptions o;
  EXPECT_EQ(one_run_epsilon_lower_bound(outcome(1000, 100, 50), o), 0.0);
  EXPECT_EQ(one_run_epsilon_lower_bound(outcome(1000, 100, 0), o), 0.0);
}

TEST(OneRunErrors, NameTheParameterAndValue) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_error([] { one_run_p_value(outcome(0, 0, 0), 1.0, 0.0); },
               "canaries must be >= 1, got 0");
  expect_error([] { one_run_p_value(outcome(10, 11, 0), 1.0, 0.0); },
               "guesses must be in [0, canaries = 10], got 11");
  expect_error([] { one_run_p_value(outcome(10, -1, 0), 1.0, 0.0); },
               "guesses must be in [0, canaries = 10], got -1");
  expect_error([] { one_run_p_value(outcome(10, 5, 6), 1.0, 0.0); },
               "correct must be in [0, guesses = 5], got 6");
  expect_error([] { one_run_p_value(outcome(10, 5, 3), -1.0, 0.0); },
               "epsilon must be finite and >= 0, got -1");
  expect_error([&] { one_run_p_value(outcome(10, 5, 3), nan, 0.0); },
               "epsilon must be finite and >= 0, got nan");
  expect_error([] { one_run_p_value(outcome(10, 5, 3), 1.0, 1.0); },
               "delta must be in [0, 1), got 1");
  LowerBoundOptions o;
  o.alpha = 0.0;
  expect_error([&] { one_run_epsilon_lower_bound(outcome(10, 5, 3), o); },
               "alpha must be in (0, 1), got 0");
  o.alpha = 0.05;
  o.tolerance = 0.5;
  expect_error([&] { one_run_epsilon_lower_bound(outcome(10, 5, 3), o); },
               "tolerance must be in (0, 0.1], got 0.5");
  o.tolerance = 1e-6;
  o.delta = -0.1;
  expect_error([&] { one_run_epsilon_lower_bound(outcome(10, 5, 3), o); },
               "delta must be in [0, 1), got -0.1");
}

}  // namespace
}  // namespace dptrain::audit
