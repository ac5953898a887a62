#include "dptrain/accountant/rdp_accountant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "dptrain/accountant/rdp_math.h"
#include "error_helpers.h"
#include "reference_table.h"

namespace dptrain::accountant {
namespace {

using dptrain::test_support::expect_error;

RdpEpsilon rdp_eps(double q, double sigma, std::int64_t steps, double delta,
                   std::vector<double> orders = default_orders()) {
  RdpAccountant acc(RdpOptions{std::move(orders)});
  acc.compose({q, sigma, steps});
  return acc.get_epsilon(delta);
}

TEST(RdpAccountant, OpacusGridMatchesOpacusReference) {
  const auto rows = rows_of("accountant.csv", "opacus.RDPAccountant");
  ASSERT_FALSE(rows.empty())
      << "no opacus.RDPAccountant rows in accountant.csv";
  for (const Row& r : rows) {
    const double expected = num(r, "eps");
    const RdpEpsilon got =
        rdp_eps(num(r, "q"), num(r, "sigma"), std::llround(num(r, "steps")),
                num(r, "delta"), opacus_orders());
    EXPECT_NEAR(got.epsilon, expected, 1e-6 * expected)
        << "q=" << r.at("q") << " sigma=" << r.at("sigma")
        << " T=" << r.at("steps");
    // Opacus's note names its optimal order, e.g. "opt_alpha=3.8;".
    const std::string& notes = r.at("notes");
    const auto at = notes.find("opt_alpha=");
    if (at != std::string::npos) {
      EXPECT_DOUBLE_EQ(got.order, std::stod(notes.substr(at + 10)))
          << "q=" << r.at("q") << " sigma=" << r.at("sigma");
    }
  }
}

TEST(RdpAccountant, DefaultGridNeverAboveEitherReference) {
  const auto opacus = rows_of("accountant.csv", "opacus.RDPAccountant");
  const auto dpa = rows_of("accountant.csv", "dp_accounting.RdpAccountant");
  ASSERT_FALSE(opacus.empty())
      << "no opacus.RDPAccountant rows in accountant.csv";
  ASSERT_EQ(opacus.size(), dpa.size());
  for (std::size_t i = 0; i < opacus.size(); ++i) {
    ASSERT_EQ(opacus[i].at("q"), dpa[i].at("q"));
    ASSERT_EQ(opacus[i].at("steps"), dpa[i].at("steps"));
    const double bound = std::min(num(opacus[i], "eps"), num(dpa[i], "eps"));
    const double got =
        rdp_eps(num(opacus[i], "q"), num(opacus[i], "sigma"),
                std::llround(num(opacus[i], "steps")), num(opacus[i], "delta"))
            .epsilon;
    EXPECT_LE(got, bound * 1.001)
        << "q=" << opacus[i].at("q") << " sigma=" << opacus[i].at("sigma");
    EXPECT_GT(got, 0.0);
  }
}

TEST(RdpAccountant, FullBatchIsExactlyTheGaussianRdp) {
  for (double sigma : {0.3, 1.0, 5.0}) {
    for (double a : {1.5, 2.0, 7.3, 64.0, 1024.0}) {
      EXPECT_EQ(compute_rdp(1.0, sigma, a), a / (2.0 * sigma * sigma));
    }
  }
  // reference/accountant.csv, both rdp rows: q=1, σ=1, T=1, δ=1e-6 with
  // the improved conversion and the 1.1…63 grids is 5.2215396311544175.
  EXPECT_NEAR(rdp_eps(1.0, 1.0, 1, 1e-6, opacus_orders()).epsilon,
              5.2215396311544175, 1e-12);
}

TEST(RdpAccountant, SmallOrderExpansionMatchesClosedForm) {
  // A_2 = 1 + q²(e^{1/σ²} − 1) (Mironov et al. 2019, integer α = 2).
  const double q = 0.01;
  const double sigma = 1.3;
  const double expected = std::log1p(q * q * std::expm1(1.0 / (sigma * sigma)));
  EXPECT_NEAR(compute_rdp(q, sigma, 2.0), expected, 1e-15);
}

TEST(RdpAccountant, SeriesAndIntegralAgreeOnFractionalOrders) {
  // Mironov et al.'s two series against the trapezoid integral of A_α.
  for (double q : {0.001, 0.01, 0.08192, 0.5}) {
    for (double sigma : {0.6, 1.0, 3.0, 10.0}) {
      for (double a : {1.5, 2.5, 4.7, 10.9}) {
        bool converged = false;
        const double series = detail::log_a_series(q, sigma, a, &converged);
        const double integral = detail::log_a_integral(q, sigma, a);
        const double shared = detail::log_a_integral_many(q, sigma, {a})[0];
        if (converged) {
          EXPECT_NEAR(series, integral, 1e-9 * integral + 1e-300)
              << "q=" << q << " sigma=" << sigma << " alpha=" << a;
        }
        EXPECT_NEAR(shared, integral, 1e-10 * integral)
            << "q=" << q << " sigma=" << sigma << " alpha=" << a;
      }
    }
  }
}

TEST(RdpAccountant, IntegerExpansionMatchesIntegral) {
  for (double q : {1e-6, 0.01, 0.3}) {
    for (double sigma : {0.8, 2.0}) {
      for (int a : {2, 5, 17}) {
        const double exact = detail::log_a_integer(q, sigma, a);
        EXPECT_NEAR(detail::log_a_integral(q, sigma, a), exact, 1e-9 * exact)
            << "q=" << q << " sigma=" << sigma << " alpha=" << a;
      }
    }
  }
}

TEST(RdpAccountant, ZeroStepsGiveZeroEpsilon) {
  RdpAccountant acc;
  EXPECT_EQ(acc.get_epsilon(1e-5).epsilon, 0.0);
  acc.compose({0.01, 1.0, 0});
  EXPECT_EQ(acc.get_epsilon(1e-5).epsilon, 0.0);
  EXPECT_EQ(acc.get_delta(0.0), 0.0);
}

TEST(RdpAccountant, EpsilonGrowsWithStepsAndRateFallsWithNoiseAndDelta) {
  double last = 0.0;
  for (std::int64_t t : {1, 10, 100, 1000, 10000}) {
    const double e = rdp_eps(0.01, 1.0, t, 1e-5).epsilon;
    EXPECT_GT(e, last) << "T=" << t;
    last = e;
  }
  last = 0.0;
  for (double q : {1e-4, 1e-3, 0.01, 0.1, 1.0}) {
    const double e = rdp_eps(q, 1.0, 100, 1e-5).epsilon;
    EXPECT_GT(e, last) << "q=" << q;
    last = e;
  }
  last = std::numeric_limits<double>::infinity();
  for (double sigma : {0.5, 0.8, 1.0, 2.0, 8.0}) {
    const double e = rdp_eps(0.01, sigma, 1000, 1e-5).epsilon;
    EXPECT_LT(e, last) << "sigma=" << sigma;
    last = e;
  }
  last = std::numeric_limits<double>::infinity();
  for (double delta : {1e-10, 1e-7, 1e-5, 1e-3, 0.1}) {
    const double e = rdp_eps(0.01, 1.0, 1000, delta).epsilon;
    EXPECT_LT(e, last) << "delta=" << delta;
    last = e;
  }
}

TEST(RdpAccountant, ExtremeRegimesAreFiniteNeverNan) {
  struct Case {
    double q, sigma;
    std::int64_t steps;
  };
  for (const Case c :
       {Case{0.1, 0.3, 100000}, Case{1.0, 0.3, 1000000}, Case{0.01, 50.0, 1},
        Case{1e-6, 1.0, 10000}, Case{1e-6, 0.2, 1}, Case{0.999, 0.05, 10},
        Case{0.5, 1e4, 1}}) {
    const RdpEpsilon e = rdp_eps(c.q, c.sigma, c.steps, 1e-5);
    EXPECT_FALSE(std::isnan(e.epsilon)) << "q=" << c.q << " sigma=" << c.sigma;
    EXPECT_GE(e.epsilon, 0.0);
    RdpAccountant acc;
    acc.compose({c.q, c.sigma, c.steps});
    for (double r : acc.rdp()) EXPECT_FALSE(std::isnan(r));
  }
  // σ = 0.3 with many steps: large but finite.
  EXPECT_TRUE(std::isfinite(rdp_eps(0.1, 0.3, 100000, 1e-5).epsilon));
  // Tiny q: the KL bound makes one step free.
  EXPECT_EQ(rdp_eps(1e-6, 1.0, 1, 1e-5).epsilon, 0.0);
}

TEST(RdpAccountant, HeterogeneousCompositionAddsRdp) {
  RdpAccountant both;
  both.compose({0.01, 1.0, 100});
  both.compose({0.02, 2.0, 50});
  RdpAccountant a;
  a.compose({0.01, 1.0, 100});
  RdpAccountant b;
  b.compose({0.02, 2.0, 50});
  const auto r = both.rdp();
  const auto ra = a.rdp();
  const auto rb = b.rdp();
  for (std::size_t k = 0; k < r.size(); ++k) {
    EXPECT_NEAR(r[k], ra[k] + rb[k], 1e-12 * r[k]);
  }
  EXPECT_GT(both.get_epsilon(1e-5).epsilon, a.get_epsilon(1e-5).epsilon);
}

TEST(RdpAccountant, DeltaInvertsEpsilon) {
  RdpAccountant acc;
  acc.compose({0.004266666666666667, 1.1, 14062});
  const RdpEpsilon e = acc.get_epsilon(1e-5);
  EXPECT_NEAR(acc.get_delta(e.epsilon), 1e-5, 1e-5 * 1e-9);
  EXPECT_LT(acc.get_delta(e.epsilon * 1.1), 1e-5);
}

TEST(RdpAccountant, RejectsBadInput) {
  RdpAccountant acc;
  acc.compose({0.01, 1.0, 10});
  const double nan = std::numeric_limits<double>::quiet_NaN();
  expect_error([&] { acc.get_epsilon(0.0); }, "delta must be in (0, 1), got 0");
  expect_error([&] { acc.get_epsilon(1.0); }, "delta must be in (0, 1), got 1");
  expect_error([&] { acc.get_epsilon(nan); },
               "delta must be in (0, 1), got nan");
  expect_error([&] { acc.get_delta(-1.0); },
               "epsilon must be finite and >= 0, got -1");
  expect_error([] { RdpAccountant(RdpOptions{{}}); },
               "orders must not be empty");
  expect_error(
      [] {
        RdpAccountant(RdpOptions{{2.0, 1.0}});
      },
      "order must be finite and > 1, got 1");
  expect_error([] { compute_rdp(0.1, 1.0, 0.5); },
               "order must be finite and > 1, got 0.5");
  expect_error([] { compute_rdp(0.0, 1.0, 2.0); },
               "sample_rate must be in (0, 1], got 0");
  expect_error(
      [&] {
        acc.compose({0.1, -2.0, 1});
      },
      "noise_multiplier must be finite and > 0, got -2");
  expect_error(
      [&] {
        acc.set_history({{0.1, 1.0, -5}});
      },
      "steps must be >= 0, got -5");
}

TEST(RdpAccountant, RejectsOrderAboveLargestSupported) {
  // Checked before anything is allocated from the order: 1e9 once asked the
  // integration grid for ~96 GB.
  const std::string too_big =
      "order 1000000000 is above the largest supported RDP order 10000";
  expect_error([] { RdpAccountant(RdpOptions{{2.0, 1e9}}); }, too_big);
  expect_error([] { compute_rdp(0.1, 1.0, 1e9); }, too_big);
  expect_error([] { RdpAccountant(RdpOptions{{10000.5}}); },
               "order 10000.5 is above the largest supported RDP order 10000");
  const double inf = std::numeric_limits<double>::infinity();
  expect_error([&] { RdpAccountant(RdpOptions{{inf}}); },
               "order must be finite and > 1, got inf");
  // The bound itself is accepted and gives a finite, positive RDP.
  const double at_bound = compute_rdp(0.01, 1.0, kMaxRdpOrder);
  EXPECT_TRUE(std::isfinite(at_bound));
  EXPECT_GT(at_bound, 0.0);
  EXPECT_NO_THROW(RdpAccountant(RdpOptions{{1.5, kMaxRdpOrder}}));
}

TEST(RdpAccountant, RejectsMoreOrdersThanSupported) {
  std::vector<double> orders(kMaxRdpOrderCount + 1);
  for (std::size_t k = 0; k < orders.size(); ++k) {
    orders[k] = 1.01 + 0.01 * static_cast<double>(k);
  }
  expect_error([&] { RdpAccountant(RdpOptions{orders}); },
               "orders lists 10001 orders; at most 10000");
  orders.pop_back();
  EXPECT_NO_THROW(RdpAccountant(RdpOptions{orders}));
}

TEST(RdpAccountant, ShippedGridsAreWithinTheBounds) {
  for (const std::vector<double>& grid : {default_orders(), opacus_orders()}) {
    EXPECT_LE(grid.size(), kMaxRdpOrderCount);
    EXPECT_LE(*std::max_element(grid.begin(), grid.end()), kMaxRdpOrder);
    EXPECT_NO_THROW(RdpAccountant(RdpOptions{grid}));
  }
}

}  // namespace
}  // namespace dptrain::accountant
