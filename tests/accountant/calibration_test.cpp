#include "dptrain/accountant/calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "error_helpers.h"
#include "reference_table.h"

namespace dptrain::accountant {
namespace {

using dptrain::test_support::expect_error;

NoiseCalibrationOptions noise_options(
    double target, double q, std::int64_t steps,
    AccountantKind kind = AccountantKind::kRdp) {
  NoiseCalibrationOptions o;
  o.target_epsilon = target;
  o.delta = 1e-5;
  o.sample_rate = q;
  o.steps = steps;
  o.accountant = kind;
  return o;
}

MaxStepsOptions max_steps_options(double target, double q, double sigma) {
  MaxStepsOptions o;
  o.target_epsilon = target;
  o.delta = 1e-5;
  o.sample_rate = q;
  o.noise_multiplier = sigma;
  return o;
}

double eps_at(const NoiseCalibrationOptions& o, double sigma) {
  return guaranteed_epsilon(o.accountant, {{o.sample_rate, sigma, o.steps}},
                            o.delta);
}

TEST(Calibration, RdpSigmaBracketsTheTarget) {
  for (double target : {0.5, 1.0, 3.0, 8.0}) {
    const auto o = noise_options(target, 0.004266666666666667, 14062);
    const NoiseCalibration c = calibrate_noise_multiplier(o);
    EXPECT_LE(c.epsilon, target);
    EXPECT_EQ(c.epsilon, eps_at(o, c.noise_multiplier));
    EXPECT_GT(eps_at(o, 0.99 * c.noise_multiplier), target)
        << "target=" << target;
  }
}

TEST(Calibration, PrvSigmaBracketsTheTargetOnItsUpperBound) {
  const auto o = noise_options(2.0, 0.08192, 875, AccountantKind::kPrv);
  const NoiseCalibration c = calibrate_noise_multiplier(o);
  EXPECT_LE(c.epsilon, 2.0);
  EXPECT_GT(eps_at(o, 0.99 * c.noise_multiplier), 2.0);
  // PRV is tighter, so it needs less noise than RDP.
  const auto r = calibrate_noise_multiplier(noise_options(2.0, 0.08192, 875));
  EXPECT_LT(c.noise_multiplier, r.noise_multiplier);
}

TEST(Calibration, RdpAgreesWithReferenceCalibration) {
  // dp_accounting's Brent root (xtol 1e-5) sits at ε = target on its order
  // grid; ours is the smallest σ within 1e-4 with ε <= target on a grid that
  // is a superset, so it is at most 1e-4 above and at most 0.1% below.
  int checked = 0;
  for (const Row& r : rows_of("noise_calibration.csv",
                              "dp_accounting.calibrate_dp_mechanism")) {
    if (r.at("accountant") != "rdp") continue;
    auto o = noise_options(num(r, "target_eps"), num(r, "q"),
                           std::llround(num(r, "steps")));
    o.delta = num(r, "delta");
    const double ref = num(r, "sigma");
    const NoiseCalibration c = calibrate_noise_multiplier(o);
    EXPECT_GE(c.noise_multiplier, ref * (1.0 - 1e-3))
        << "target=" << r.at("target_eps");
    EXPECT_LE(c.noise_multiplier, ref * (1.0 + 3e-4))
        << "target=" << r.at("target_eps");
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no dp_accounting rdp rows in noise_calibration.csv";
}

TEST(Calibration, PriorEventsCountAgainstTheBudget) {
  auto o = noise_options(2.0, 0.01, 1000);
  const double fresh = calibrate_noise_multiplier(o).noise_multiplier;
  o.prior_events = {{0.01, 2.0, 1000}};
  EXPECT_GT(calibrate_noise_multiplier(o).noise_multiplier, fresh);
}

TEST(Calibration, MaxStepsIsTheLastStepWithinBudget) {
  auto o = max_steps_options(3.0, 0.01, 1.0);
  const std::int64_t t = max_steps(o);
  ASSERT_GT(t, 0);
  EXPECT_LE(guaranteed_epsilon(AccountantKind::kRdp, {{0.01, 1.0, t}}, 1e-5),
            3.0);
  EXPECT_GT(
      guaranteed_epsilon(AccountantKind::kRdp, {{0.01, 1.0, t + 1}}, 1e-5),
      3.0);
  o.target_epsilon = 1e-3;
  EXPECT_EQ(max_steps(o), 0);
  o.target_epsilon = 1e6;
  o.max_steps = 1000;
  EXPECT_EQ(max_steps(o), 1000);
}

TEST(Calibration, PrvMaxStepsExceedsRdp) {
  auto o = max_steps_options(2.0, 0.05, 2.0);
  const std::int64_t rdp = max_steps(o);
  o.accountant = AccountantKind::kPrv;
  const std::int64_t prv = max_steps(o);
  EXPECT_GT(prv, rdp);
  EXPECT_LE(guaranteed_epsilon(AccountantKind::kPrv, {{0.05, 2.0, prv}}, 1e-5),
            2.0);
  EXPECT_GT(
      guaranteed_epsilon(AccountantKind::kPrv, {{0.05, 2.0, prv + 1}}, 1e-5),
      2.0);
}

TEST(Calibration, ParsesAccountantNames) {
  EXPECT_EQ(parse_accountant_kind("rdp"), AccountantKind::kRdp);
  EXPECT_EQ(parse_accountant_kind("prv"), AccountantKind::kPrv);
  EXPECT_EQ(to_string(AccountantKind::kPrv), "prv");
  expect_error([] { parse_accountant_kind("gdp"); },
               "accountant must be \"rdp\" or \"prv\", got \"gdp\"");
}

TEST(Calibration, RejectsBadInput) {
  expect_error([] { calibrate_noise_multiplier(noise_options(0.0, 0.01, 10)); },
               "target_epsilon must be finite and > 0, got 0");
  expect_error([] { calibrate_noise_multiplier(noise_options(1.0, 0.0, 10)); },
               "sample_rate must be in (0, 1], got 0");
  expect_error([] { calibrate_noise_multiplier(noise_options(1.0, 0.01, 0)); },
               "steps must be >= 1, got 0");
  expect_error([] { calibrate_noise_multiplier(noise_options(1.0, 0.01, -2)); },
               "steps must be >= 0, got -2");
  auto bad_tol = noise_options(1.0, 0.01, 10);
  bad_tol.relative_tolerance = 0.5;
  expect_error([&] { calibrate_noise_multiplier(bad_tol); },
               "relative_tolerance must be in (0, 0.01], got 0.5");
  auto bad_delta = noise_options(1.0, 0.01, 10);
  bad_delta.delta = 0.0;
  expect_error([&] { calibrate_noise_multiplier(bad_delta); },
               "delta must be in (0, 1), got 0");
  auto spent = noise_options(1.0, 0.01, 10);
  spent.prior_events = {{1.0, 0.5, 100}};
  expect_error([&] { calibrate_noise_multiplier(spent); },
               "no noise_multiplier up to 1000000 reaches");
  auto m = max_steps_options(1.0, 0.01, -1.0);
  expect_error([&] { max_steps(m); },
               "noise_multiplier must be finite and > 0, got -1");
  m.noise_multiplier = 1.0;
  m.max_steps = 0;
  expect_error([&] { max_steps(m); }, "max_steps must be >= 1, got 0");
}

}  // namespace
}  // namespace dptrain::accountant
