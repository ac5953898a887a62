#include "dptrain/dp/mechanism/privacy_budget.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>

#include "archive_helpers.h"
#include "error_helpers.h"

namespace dptrain::dp {
namespace {

using dptrain::test_support::error_of;
using dptrain::test_support::round_trip;

using accountant::AccountantKind;
using accountant::PoissonSampledGaussian;

// Options with δ = 1e-5 and the given target ε.
PrivacyBudgetOptions with_target(double target_epsilon) {
  PrivacyBudgetOptions options;
  options.delta = 1e-5;
  options.target_epsilon = target_epsilon;
  return options;
}

// ε (RDP, δ = 1e-5) of what `budget` spent plus one more `step`, computed by
// the accountant directly rather than by the budget under test.
double epsilon_after_one_more(const PrivacyBudget& budget,
                              const PoissonSampledGaussian& step) {
  accountant::EventHistory one_more = budget.history();
  accountant::append_event(one_more, step);
  return accountant::guaranteed_epsilon(AccountantKind::kRdp, one_more, 1e-5);
}

TEST(PrivacyBudget, StopsBeforeTheStepThatWouldPassTheTarget) {
  PrivacyBudget budget(with_target(2.0));
  const PoissonSampledGaussian step{0.01, 1.5, 1};
  int64_t taken = 0;
  while (budget.allows_step(step) && taken < 100000) {
    budget.record(step);
    ++taken;
  }
  ASSERT_GT(taken, 100);
  ASSERT_LT(taken, 100000);
  EXPECT_LE(budget.epsilon(), 2.0);
  // The refused step would have passed the target (the accountant says so).
  EXPECT_GT(epsilon_after_one_more(budget, step), 2.0);
}

TEST(PrivacyBudget, ANewNoiseLevelIsCheckedAgainstWhatWasSpent) {
  PrivacyBudget budget(with_target(2.0));
  const PoissonSampledGaussian noisy{0.05, 2.0, 1};
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(budget.allows_step(noisy));
    budget.record(noisy);
  }
  const PoissonSampledGaussian light{0.05, 0.6, 1};
  int64_t taken = 0;
  while (budget.allows_step(light) && taken < 100000) {
    budget.record(light);
    ++taken;
  }
  EXPECT_LE(budget.epsilon(), 2.0);
  EXPECT_GT(epsilon_after_one_more(budget, light), 2.0);
}

TEST(PrivacyBudget, WithoutTargetItOnlyReports) {
  PrivacyBudgetOptions options;
  options.delta = 1e-5;
  PrivacyBudget budget(options);
  EXPECT_DOUBLE_EQ(budget.epsilon(), 0.0);
  const PoissonSampledGaussian step{0.5, 0.5, 1000};
  EXPECT_TRUE(budget.allows_step(step));
  budget.record(step);
  EXPECT_EQ(budget.steps(), 1000);
  EXPECT_GT(budget.epsilon(), 10.0);
}

TEST(PrivacyBudget, HistoryRoundTripKeepsEpsilon) {
  PrivacyBudgetOptions options;
  options.delta = 1e-5;
  options.target_epsilon = 8.0;
  PrivacyBudget original(options);
  original.record({0.01, 1.1, 300});
  original.record({0.02, 0.9, 20});
  PrivacyBudget resumed(options);
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) { resumed.load(in); });
  EXPECT_EQ(resumed.steps(), 320);
  EXPECT_DOUBLE_EQ(resumed.epsilon(), original.epsilon());
}

TEST(PrivacyBudget, LoadRefusesAnotherDelta) {
  PrivacyBudgetOptions options;
  options.delta = 1e-5;
  PrivacyBudget original(options);
  original.record({0.01, 1.1, 30});
  options.delta = 1e-6;
  PrivacyBudget other(options);
  std::string error;
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) { error = error_of([&] { other.load(in); }); });
  EXPECT_NE(error.find("privacy budget checkpoint mismatch: delta is"),
            std::string::npos);
  EXPECT_EQ(other.steps(), 0);
}

TEST(PrivacyBudget, RejectsBadOptions) {
  PrivacyBudgetOptions options;
  options.delta = 1.0;
  EXPECT_EQ(error_of([&] { PrivacyBudget{options}; }),
            "delta must be in (0, 1), got 1");
  options.delta = 1e-5;
  options.target_epsilon = -1;
  EXPECT_EQ(error_of([&] { PrivacyBudget{options}; }),
            "target_epsilon must be > 0, got -1");
}

}  // namespace
}  // namespace dptrain::dp
