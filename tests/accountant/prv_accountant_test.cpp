#include "dptrain/accountant/prv_accountant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "dptrain/accountant/rdp_accountant.h"
#include "error_helpers.h"
#include "reference_table.h"

namespace dptrain::accountant {
namespace {

using dptrain::test_support::expect_error;

PrvEpsilon prv_eps(double q, double sigma, std::int64_t steps, double delta,
                   double eps_error = 0.01) {
  PrvAccountant acc(PrvOptions{eps_error, 0.0});
  acc.compose({q, sigma, steps});
  return acc.get_epsilon(delta);
}

// δ(ε) of the Gaussian mechanism with sensitivity/σ = μ (Balle & Wang 2018).
double analytic_gaussian_delta(double mu, double eps) {
  auto cdf = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  return cdf(-eps / mu + mu / 2.0) - std::exp(eps) * cdf(-eps / mu - mu / 2.0);
}

// ε(δ) of the analytic Gaussian by bisection on the (decreasing) δ(ε).
double analytic_gaussian_epsilon(double mu, double delta) {
  double lo = 0.0;
  double hi = 1.0;
  while (analytic_gaussian_delta(mu, hi) > delta) hi *= 2.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (analytic_gaussian_delta(mu, mid) > delta ? lo : hi) = mid;
  }
  return hi;
}

// The rows of accountant.csv computed by prv_accountant.PRVAccountant.
std::vector<Row> prv_rows() {
  return rows_of("accountant.csv", "prv_accountant.PRVAccountant");
}

// Reference rows (prv_accountant.PRVAccountant, eps_error 0.01,
// delta_error δ/1000) whose grids are small enough for a fast test; the
// σ = 0.3 row needs a 13M-point grid and runs in the Slow test below.
void check_reference_row(const Row& r) {
  const double q = num(r, "q");
  const double sigma = num(r, "sigma");
  const auto steps = std::llround(num(r, "steps"));
  const double delta = num(r, "delta");
  const PrvEpsilon got = prv_eps(q, sigma, steps, delta);
  const double ref = num(r, "eps");
  const double ref_low = num(r, "eps_low");
  const double ref_up = num(r, "eps_up");
  const std::string where = "q=" + r.at("q") + " sigma=" + r.at("sigma") +
                            " T=" + r.at("steps") + " delta=" + r.at("delta");
  EXPECT_GE(got.estimate, ref_low - 0.01) << where;
  EXPECT_LE(got.estimate, ref_up + 0.01) << where;
  EXPECT_LE(got.lower, ref) << where;
  EXPECT_GE(got.upper, ref) << where;
  EXPECT_LE(got.lower, got.estimate) << where;
  EXPECT_LE(got.estimate, got.upper) << where;
}

class PrvReference : public ::testing::TestWithParam<int> {};

TEST_P(PrvReference, EstimateInBandAndBoundsContainReference) {
  std::vector<Row> rows;
  for (const Row& r : prv_rows()) {
    if (num(r, "sigma") >= 0.4) rows.push_back(r);
  }
  const auto i = static_cast<std::size_t>(GetParam());
  ASSERT_LT(i, rows.size())
      << "accountant.csv has too few PRV rows with sigma >= 0.4";
  check_reference_row(rows[i]);
}

INSTANTIATE_TEST_SUITE_P(Rows, PrvReference, ::testing::Range(0, 16));

TEST(PrvAccountant, SlowMatchesReferenceAtLowNoise) {
  int checked = 0;
  for (const Row& r : prv_rows()) {
    if (num(r, "sigma") < 0.4) {
      check_reference_row(r);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0) << "no PRV rows with sigma < 0.4 in accountant.csv";
}

TEST(PrvAccountant, FullBatchMatchesAnalyticGaussian) {
  // q = 1: T steps at σ are one Gaussian mechanism with μ = √T/σ.
  struct Case {
    double sigma;
    std::int64_t steps;
    double delta;
  };
  for (const Case c :
       {Case{1.0, 1, 1e-6}, Case{5.0, 100, 1e-6}, Case{2.0, 10, 1e-5}}) {
    const double exact = analytic_gaussian_epsilon(
        std::sqrt(static_cast<double>(c.steps)) / c.sigma, c.delta);
    const PrvEpsilon got = prv_eps(1.0, c.sigma, c.steps, c.delta);
    EXPECT_NEAR(got.estimate, exact, 1e-3) << "sigma=" << c.sigma;
    EXPECT_LE(got.lower, exact);
    EXPECT_GE(got.upper, exact);
  }
  // Reference table: q=1, σ=1, T=1, δ=1e-6 → 4.886554117462164 (dp_accounting).
  EXPECT_NEAR(analytic_gaussian_epsilon(1.0, 1e-6), 4.886554117462164, 1e-9);
}

TEST(PrvAccountant, SingleStepMatchesExactHockeyStick) {
  // reference/accountant.csv "exact" rows: T = 1 closed form at 50 digits.
  const PrvEpsilon a = prv_eps(0.01, 0.5, 1, 1e-5);
  EXPECT_LE(a.lower, 3.0253578054763586);
  EXPECT_GE(a.upper, 3.0253578054763586);
  EXPECT_NEAR(a.estimate, 3.0253578054763586, 2e-3);
  const PrvEpsilon b = prv_eps(0.5, 20.0, 1, 1e-5);
  EXPECT_LE(b.lower, 0.07803252475247002);
  EXPECT_GE(b.upper, 0.07803252475247002);
}

TEST(PrvAccountant, ZeroStepsGiveZero) {
  PrvAccountant acc;
  const PrvEpsilon e = acc.get_epsilon(1e-5);
  EXPECT_EQ(e.estimate, 0.0);
  EXPECT_EQ(e.upper, 0.0);
  acc.compose({0.1, 1.0, 0});
  EXPECT_EQ(acc.get_epsilon(1e-5).upper, 0.0);
  EXPECT_EQ(acc.get_delta(1.0).upper, 0.0);
}

TEST(PrvAccountant, TighterThanRdp) {
  struct Case {
    double q, sigma;
    std::int64_t steps;
  };
  for (const Case c :
       {Case{0.004266666666666667, 1.1, 2343}, Case{0.08192, 3.0, 875},
        Case{0.01, 2.0, 1000}, Case{1.0, 2.0, 10}}) {
    RdpAccountant rdp;
    rdp.compose({c.q, c.sigma, c.steps});
    const double r = rdp.get_epsilon(1e-5).epsilon;
    const PrvEpsilon p = prv_eps(c.q, c.sigma, c.steps, 1e-5);
    EXPECT_LT(p.estimate, r) << "q=" << c.q << " sigma=" << c.sigma;
    EXPECT_LT(p.upper, r) << "q=" << c.q << " sigma=" << c.sigma;
  }
}

TEST(PrvAccountant, MonotoneInStepsRateNoiseAndDelta) {
  double last = 0.0;
  for (std::int64_t t : {1, 10, 100, 1000}) {
    const double e = prv_eps(0.02, 1.0, t, 1e-5).estimate;
    EXPECT_GT(e, last) << "T=" << t;
    last = e;
  }
  last = 0.0;
  for (double q : {0.005, 0.02, 0.1, 0.5}) {
    const double e = prv_eps(q, 1.5, 100, 1e-5).estimate;
    EXPECT_GT(e, last) << "q=" << q;
    last = e;
  }
  last = std::numeric_limits<double>::infinity();
  for (double sigma : {0.8, 1.0, 2.0, 4.0}) {
    const double e = prv_eps(0.02, sigma, 100, 1e-5).estimate;
    EXPECT_LT(e, last) << "sigma=" << sigma;
    last = e;
  }
  last = std::numeric_limits<double>::infinity();
  for (double delta : {1e-7, 1e-5, 1e-3}) {
    const double e = prv_eps(0.02, 1.0, 100, delta).estimate;
    EXPECT_LT(e, last) << "delta=" << delta;
    last = e;
  }
}

TEST(PrvAccountant, HeterogeneousCompositionIsOrderFreeAndBetweenItsParts) {
  PrvAccountant ab;
  ab.compose({0.01, 1.0, 300});
  ab.compose({0.05, 2.0, 100});
  PrvAccountant ba;
  ba.compose({0.05, 2.0, 100});
  ba.compose({0.01, 1.0, 300});
  const PrvEpsilon e_ab = ab.get_epsilon(1e-5);
  const PrvEpsilon e_ba = ba.get_epsilon(1e-5);
  EXPECT_NEAR(e_ab.estimate, e_ba.estimate, 1e-9);
  // Split identical events compose like one event.
  PrvAccountant split;
  split.compose({0.01, 1.0, 100});
  split.compose({0.05, 2.0, 100});
  split.compose({0.01, 1.0, 200});
  EXPECT_NEAR(split.get_epsilon(1e-5).estimate, e_ab.estimate, 1e-9);
  // More privacy loss than either part alone, less than RDP of the whole.
  EXPECT_GT(e_ab.estimate, prv_eps(0.01, 1.0, 300, 1e-5).estimate);
  EXPECT_GT(e_ab.estimate, prv_eps(0.05, 2.0, 100, 1e-5).estimate);
  RdpAccountant rdp;
  rdp.set_history(ab.history());
  EXPECT_LT(e_ab.upper, rdp.get_epsilon(1e-5).epsilon);
}

TEST(PrvAccountant, DeltaAndEpsilonAreInverse) {
  PrvAccountant acc;
  acc.compose({0.02, 1.2, 500});
  const PrvEpsilon e = acc.get_epsilon(1e-5);
  const PrvDelta d = acc.get_delta(e.estimate);
  EXPECT_NEAR(d.estimate, 1e-5, 1e-7);
  EXPECT_LE(d.lower, 1e-5);
  EXPECT_GE(d.upper, 1e-5);
  const PrvDelta d_up = acc.get_delta(e.upper);
  EXPECT_LE(d_up.upper, 1e-5 * 1.01);
}

TEST(PrvAccountant, ExtremeRegimesAreFiniteNeverNan) {
  for (const PrvEpsilon e :
       {prv_eps(1e-6, 1.0, 1000, 1e-5), prv_eps(0.01, 50.0, 1000, 1e-5),
        prv_eps(0.5, 0.5, 3, 1e-5)}) {
    EXPECT_TRUE(std::isfinite(e.estimate));
    EXPECT_TRUE(std::isfinite(e.upper));
    EXPECT_GE(e.estimate, 0.0);
  }
}

TEST(PrvAccountant, RejectsBadInput) {
  expect_error(
      [] {
        PrvAccountant(PrvOptions{0.0, 0.0});
      },
      "eps_error must be in (0, 1], got 0");
  expect_error(
      [] {
        PrvAccountant(PrvOptions{2.0, 0.0});
      },
      "eps_error must be in (0, 1], got 2");
  expect_error(
      [] {
        PrvAccountant(PrvOptions{std::nan(""), 0.0});
      },
      "eps_error must be in (0, 1], got nan");
  expect_error(
      [] {
        PrvAccountant(PrvOptions{0.01, -1.0});
      },
      "delta_error must be in [0, 1) (0 = default), got -1");
  PrvAccountant acc;
  acc.compose({0.01, 1.0, 10});
  expect_error([&] { acc.get_epsilon(0.0); }, "delta must be in (0, 1), got 0");
  expect_error([&] { acc.get_epsilon(2.0); }, "delta must be in (0, 1), got 2");
  expect_error([&] { acc.get_delta(-0.5); },
               "epsilon must be finite and >= 0, got -0.5");
  PrvAccountant coarse(PrvOptions{0.01, 1e-3});
  coarse.compose({0.01, 1.0, 10});
  expect_error([&] { coarse.get_epsilon(1e-4); },
               "delta_error must be < delta=0.0001, got 0.001");
  PrvAccountant fine(PrvOptions{1e-5, 0.0});
  fine.compose({0.01, 1.0, 100000});
  expect_error([&] { fine.get_epsilon(1e-5); },
               "raise eps_error or use the RDP accountant");
  PrvAccountant tiny_delta;
  tiny_delta.compose({0.01, 1.0, 10000});
  expect_error([&] { tiny_delta.get_epsilon(1e-12); },
               "is below the rounding error of a");
  expect_error(
      [&] {
        acc.compose({0.1, 0.0, 1});
      },
      "noise_multiplier must be finite and > 0, got 0");
}

}  // namespace
}  // namespace dptrain::accountant
