#include "dptrain/audit/gdp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "error_helpers.h"

namespace dptrain::audit {
namespace {

using dptrain::test_support::expect_error;

// The formula evaluated with std::erfc and a plain bisection, independent of
// the library's log-space evaluation (Boost-free).
double reference_phi(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }
double reference_delta(double mu, double eps) {
  return reference_phi(-eps / mu + mu / 2.0) -
         std::exp(eps) * reference_phi(-eps / mu - mu / 2.0);
}
double reference_epsilon(double mu, double delta) {
  double lo = 0.0;
  double hi = 100.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (reference_delta(mu, mid) > delta ? lo : hi) = mid;
  }
  return hi;
}

TEST(GdpDelta, MatchesHandComputedValues) {
  // δ(ε = 1) of 1-GDP: Φ(−0.5) − e·Φ(−1.5) = 0.1269367375066439 (Python's
  // math.erfc on the formula).
  EXPECT_NEAR(gdp_delta(1.0, 1.0), 0.1269367375066439, 1e-14);
  // δ(0) = Φ(μ/2) − Φ(−μ/2) = erf(μ/(2√2)).
  for (double mu : {0.1, 0.5, 1.0, 2.0, 5.0}) {
    EXPECT_NEAR(gdp_delta(mu, 0.0), std::erf(mu / (2.0 * std::sqrt(2.0))),
                1e-15)
        << "mu=" << mu;
  }
  for (double mu : {0.3, 1.0, 3.0}) {
    for (double eps : {0.5, 2.0, 6.0}) {
      EXPECT_NEAR(gdp_delta(mu, eps), reference_delta(mu, eps),
                  1e-13 + 1e-9 * reference_delta(mu, eps))
          << "mu=" << mu << " eps=" << eps;
    }
  }
}

TEST(GdpDelta, StaysFiniteAndSmallForHugeEpsilon) {
  // e^800 overflows a double; the log-space form does not.
  const double d = gdp_delta(1.0, 800.0);
  EXPECT_TRUE(std::isfinite(d));
  EXPECT_GE(d, 0.0);
  EXPECT_LT(d, 1e-300);
  EXPECT_EQ(gdp_delta(0.0, 1.0), 0.0);
}

TEST(GdpEpsilon, MatchesHandComputedValues) {
  // ε(δ = 1e-5) of 1-GDP = 4.377178095681224 and of 0.5-GDP =
  // 1.9930914044151204 (Python's math.erfc on the formula, 200 bisection
  // steps on [0, 100]).
  EXPECT_NEAR(gdp_epsilon(1.0, 1e-5), 4.377178095681224, 1e-9);
  EXPECT_NEAR(gdp_epsilon(0.5, 1e-5), 1.9930914044151204, 1e-9);
  for (double mu : {0.2, 2.0, 3.0}) {
    for (double delta : {1e-3, 1e-6}) {
      EXPECT_NEAR(gdp_epsilon(mu, delta), reference_epsilon(mu, delta),
                  1e-8 * reference_epsilon(mu, delta))
          << "mu=" << mu << " delta=" << delta;
    }
  }
}

TEST(GdpEpsilon, RoundTripsWithDeltaOnTheSafeSide) {
  for (double mu : {0.05, 0.5, 1.0, 4.0, 10.0}) {
    for (double delta : {1e-2, 1e-5, 1e-10}) {
      const double eps = gdp_epsilon(mu, delta);
      ASSERT_GT(eps, 0.0);
      EXPECT_LE(gdp_delta(mu, eps), delta);
      EXPECT_GT(gdp_delta(mu, eps * (1.0 - 1e-9)), delta)
          << "mu=" << mu << " delta=" << delta;
    }
  }
}

TEST(GdpEpsilon, IsZeroWhenDeltaCoversEverything) {
  // δ(0) of 0.1-GDP is erf(0.05/√2) ≈ 0.0399 < 0.05.
  EXPECT_EQ(gdp_epsilon(0.1, 0.05), 0.0);
  EXPECT_EQ(gdp_epsilon(0.0, 1e-5), 0.0);
}

TEST(GdpErrors, NameTheParameterAndValue) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_error([] { gdp_delta(-1.0, 1.0); },
               "mu must be finite and >= 0, got -1");
  expect_error([&] { gdp_delta(1.0, nan); },
               "epsilon must be finite and >= 0, got nan");
  expect_error([] { gdp_epsilon(1.0, 0.0); }, "delta must be in (0, 1), got 0");
  expect_error([] { gdp_epsilon(1.0, 1.0); }, "delta must be in (0, 1), got 1");
  expect_error(
      [] { gdp_epsilon(std::numeric_limits<double>::infinity(), 0.1); },
      "mu must be finite and >= 0, got inf");
}

}  // namespace
}  // namespace dptrain::audit
