#include "dptrain/dp/optim/lr_schedule.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "error_helpers.h"

namespace dptrain::dp {
namespace {

using dptrain::test_support::error_of;

TEST(LrSchedule, ConstantIsTheBaseRate) {
  const LrSchedule s({LrScheduleKind::kConstant, 0.1});
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(1000000), 0.1);
}

TEST(LrSchedule, LinearWarmUpThenConstant) {
  // base 0.1, 4 warm-up steps: 0.025, 0.05, 0.075, 0.1, then 0.1.
  const LrSchedule s({LrScheduleKind::kConstant, 0.1, 4});
  EXPECT_DOUBLE_EQ(s.at(0), 0.025);
  EXPECT_DOUBLE_EQ(s.at(1), 0.05);
  EXPECT_DOUBLE_EQ(s.at(3), 0.1);
  EXPECT_DOUBLE_EQ(s.at(10), 0.1);
}

TEST(LrSchedule, CosineFallsToZeroAtTotalSteps) {
  // 0.1·(1 + cos(π t/10))/2: t = 0 → 0.1, 5 → 0.05, 10 → 0, later 0.
  const LrSchedule s({LrScheduleKind::kCosine, 0.1, 0, 10});
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_NEAR(s.at(5), 0.05, 1e-15);
  EXPECT_NEAR(s.at(10), 0.0, 1e-15);
  EXPECT_NEAR(s.at(20), 0.0, 1e-15);
  // t = 2: 0.05·(1 + cos(0.2π)) = 0.05·1.809016994 = 0.0904508497.
  EXPECT_NEAR(s.at(2), 0.0904508497187474, 1e-12);
}

TEST(LrSchedule, WarmUpThenCosine) {
  // warm-up 2 of 6 steps: 0.05, 0.1, then cosine over the last 4 steps.
  const LrSchedule s({LrScheduleKind::kCosine, 0.1, 2, 6});
  EXPECT_DOUBLE_EQ(s.at(0), 0.05);
  EXPECT_DOUBLE_EQ(s.at(1), 0.1);
  EXPECT_DOUBLE_EQ(s.at(2), 0.1);
  EXPECT_NEAR(s.at(4), 0.05, 1e-15);
  EXPECT_NEAR(s.at(6), 0.0, 1e-15);
}

TEST(LrSchedule, RejectsBadOptions) {
  EXPECT_EQ(error_of([] {
              LrSchedule({LrScheduleKind::kConstant, 0.0});
            }),
            "lr must be > 0, got 0");
  EXPECT_EQ(error_of([] {
              LrSchedule({LrScheduleKind::kConstant, 0.1, -1});
            }),
            "warmup_steps must be >= 0, got -1");
  EXPECT_EQ(
      error_of([] {
        LrSchedule({LrScheduleKind::kCosine, 0.1, 5, 5});
      }),
      "total_steps must be > warmup_steps (5) for a cosine schedule, got 5");
  const LrSchedule s({LrScheduleKind::kConstant, 0.1});
  EXPECT_EQ(error_of([&] { s.at(-3); }), "step must be >= 0, got -3");
  EXPECT_EQ(parse_lr_schedule_kind("cosine"), LrScheduleKind::kCosine);
  EXPECT_EQ(error_of([] { parse_lr_schedule_kind("step"); }),
            "lr_schedule must be one of constant, cosine, got 'step'");
}

}  // namespace
}  // namespace dptrain::dp
