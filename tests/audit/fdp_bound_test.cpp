#include "dptrain/audit/fdp_bound.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "dptrain/audit/gdp.h"
#include "dptrain/audit/one_run_bound.h"
#include "error_helpers.h"
#include "outcome.h"

namespace dptrain::audit {
namespace {

using dptrain::test_support::expect_error;

using testing::outcome;

double phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
// Φ⁻¹ by bisection on std::erfc (independent of the library's Boost one).
double phi_inverse(double p) {
  double lo = -40.0;
  double hi = 40.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (phi(mid) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

TEST(FdpRejects, SingleCanaryIsExactlyTight) {
  // m = r = v = 1 under ε-DP: the best guess is right with probability
  // q = e^ε/(1 + e^ε), so "P[right] < tau" holds exactly when tau > q.
  const double eps = 1.0;
  const double q = std::exp(eps) / (1.0 + std::exp(eps));
  const auto rr = approx_dp_inverse_blow_up(eps, 0.0);
  EXPECT_TRUE(fdp_rejects(outcome(1, 1, 1), rr, q * (1.0 + 1e-6)));
  EXPECT_FALSE(fdp_rejects(outcome(1, 1, 1), rr, q * (1.0 - 1e-6)));
  // Under μ-GDP the best single guess is right with probability Φ(μ/2):
  // Φ(0.5) = 0.6914624612740131 for μ = 1.
  const auto gauss = gdp_inverse_blow_up(1.0);
  EXPECT_TRUE(fdp_rejects(outcome(1, 1, 1), gauss, 0.6914624612740131 + 1e-6));
  EXPECT_FALSE(fdp_rejects(outcome(1, 1, 1), gauss, 0.6914624612740131 - 1e-6));
}

TEST(InverseBlowUp, InvertsTheBlowUpOfTheTradeoffCurve) {
  for (double mu : {0.5, 1.0, 3.0}) {
    const auto inv = gdp_inverse_blow_up(mu);
    // f̄(x) = 1 − f(x) with f(x) = Φ(Φ⁻¹(1 − x) − μ).
    for (double y : {0.01, 0.2, 0.5, 0.9, 0.999}) {
      const double x = inv(y);
      EXPECT_NEAR(1.0 - phi(phi_inverse(1.0 - x) - mu), y, 1e-9)
          << "mu=" << mu << " y=" << y;
    }
    EXPECT_EQ(inv(0.0), 0.0);
    EXPECT_EQ(inv(1.0), 1.0);
  }
  const double eps = 1.5;
  const double delta = 0.01;
  const auto inv = approx_dp_inverse_blow_up(eps, delta);
  const auto blow_up = [&](double x) {  // 1 − f_{ε,δ}(x)
    return 1.0 - std::max({0.0, 1.0 - delta - std::exp(eps) * x,
                           std::exp(-eps) * (1.0 - delta - x)});
  };
  for (double y : {0.011, 0.05, 0.3, 0.7, 0.99}) {
    EXPECT_NEAR(blow_up(inv(y)), y, 1e-12) << "y=" << y;
  }
  EXPECT_EQ(inv(0.005), 0.0);  // f̄ >= δ everywhere
}

TEST(GdpLowerBound, ReturnedMuIsRejectedAndTheNextIsNot) {
  LowerBoundOptions o;
  o.delta = 1e-5;
  o.alpha = 0.05;
  o.tolerance = 1e-6;
  const GuessOutcome g = outcome(1000, 200, 180);
  const GdpLowerBound b = gdp_lower_bound(g, o);
  ASSERT_GT(b.mu, 0.5);
  EXPECT_TRUE(fdp_rejects(g, gdp_inverse_blow_up(b.mu), o.alpha));
  EXPECT_FALSE(fdp_rejects(g, gdp_inverse_blow_up(b.mu + 2e-6), o.alpha));
  EXPECT_EQ(b.epsilon, gdp_epsilon(b.mu, o.delta));
}

TEST(GdpLowerBound, GrowsWithCorrectGuessesAndIsZeroAtChance) {
  LowerBoundOptions o;
  double last = -1.0;
  for (std::int64_t v : {120, 140, 160, 180, 200}) {
    const double mu = gdp_lower_bound(outcome(1000, 200, v), o).mu;
    EXPECT_GT(mu, last) << "v=" << v;
    last = mu;
  }
  EXPECT_EQ(gdp_lower_bound(outcome(1000, 200, 100), o).mu, 0.0);
  EXPECT_EQ(gdp_lower_bound(outcome(1000, 200, 100), o).epsilon, 0.0);
}

TEST(FdpEpsilonLowerBound, NeverBeatsTheExactPureDpBound) {
  // At δ = 0 the one-run p-value is the exact tail of randomized response
  // guessing its outputs (checked by enumeration in OneRunPValue), so no
  // valid test rejects an ε that it does not: the f-DP bound is at most the
  // one-run bound (up to the bisection tolerance), and loses little.
  LowerBoundOptions o;
  o.delta = 0.0;
  for (const GuessOutcome& g :
       {outcome(1000, 200, 180), outcome(1000, 1000, 700),
        outcome(10000, 1000, 900), outcome(100, 100, 100)}) {
    const double fdp = fdp_epsilon_lower_bound(g, o);
    const double one_run = one_run_epsilon_lower_bound(g, o);
    EXPECT_LE(fdp, one_run + o.tolerance)
        << "r=" << g.guesses << " v=" << g.correct;
    EXPECT_GE(fdp, 0.97 * one_run) << "r=" << g.guesses << " v=" << g.correct;
  }
}

TEST(FdpEpsilonLowerBound, HandlesDeltaBetterThanTheOneRunBound) {
  // The one-run δ term grows with 2mδ; the f-DP curve f_{ε,δ} does not
  // depend on m. All 200 guesses right among m = 10000 canaries:
  LowerBoundOptions o;
  o.delta = 1e-5;
  const GuessOutcome g = outcome(10000, 200, 200);
  EXPECT_GT(fdp_epsilon_lower_bound(g, o),
            one_run_epsilon_lower_bound(g, o) + 0.1);
}

TEST(FdpErrors, NameTheParameterAndValue) {
  const auto curve = gdp_inverse_blow_up(1.0);
  expect_error([&] { fdp_rejects(outcome(10, 5, 3), curve, 0.0); },
               "tau must be in (0, 1], got 0");
  expect_error([&] { fdp_rejects(outcome(10, 5, 3), curve, 1.5); },
               "tau must be in (0, 1], got 1.5");
  expect_error([] { fdp_rejects(outcome(10, 5, 3), InverseBlowUp(), 0.05); },
               "inverse_blow_up must be set");
  expect_error([&] { fdp_rejects(outcome(10, 11, 3), curve, 0.05); },
               "guesses must be in [0, canaries = 10], got 11");
  expect_error([] { gdp_inverse_blow_up(-1.0); },
               "mu must be finite and >= 0, got -1");
  expect_error([] { approx_dp_inverse_blow_up(-1.0, 0.0); },
               "epsilon must be finite and >= 0, got -1");
  expect_error([] { approx_dp_inverse_blow_up(1.0, 1.0); },
               "delta must be in [0, 1), got 1");
  LowerBoundOptions o;
  o.delta = 0.0;
  expect_error([&] { gdp_lower_bound(outcome(10, 5, 3), o); },
               "delta must be in (0, 1), got 0");
  o.delta = 1e-5;
  o.alpha = 1.0;
  expect_error([&] { fdp_epsilon_lower_bound(outcome(10, 5, 3), o); },
               "alpha must be in (0, 1), got 1");
}

}  // namespace
}  // namespace dptrain::audit
