// DpPlan: the run's privacy as one value. The calibrated σ is checked against
// dp_accounting's value for MNIST at B = 256 (tests/accountant/reference/
// noise_calibration.csv: q = 256/60000, T = 14062, δ = 1e-5, ε = 1 →
// σ = 2.1784298628909733), the rest against the definitions.
#include "dptrain/train/dp_plan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "error_helpers.h"

namespace dptrain::train {
namespace {

using dptrain::test_support::error_of;

TrainConfig mnist_config() {
  TrainConfig c;
  c.dataset = "toy";
  c.batch_size = 256;
  c.steps = 14062;
  c.delta = 1e-5;
  c.target_epsilon = 1.0;
  c.max_grad_norm = 1.5;
  c.accountant = "rdp";
  return c;
}

TEST(DpPlan, CalibratedPlanMatchesDpAccountingsSigma) {
  const TrainConfig c = mnist_config();
  const DpPlan p = make_dp_plan(c, 60000, 1.5, "one example");
  EXPECT_EQ(p.dataset_size, 60000);
  EXPECT_EQ(p.expected_batch_size, 256);
  EXPECT_DOUBLE_EQ(p.sample_rate, 256.0 / 60000.0);
  EXPECT_EQ(p.steps, 14062);
  EXPECT_EQ(p.steps_per_epoch, 235);  // ⌈60000 / 256⌉
  EXPECT_EQ(p.noise_multiplier_source, "calibrated");
  // The same band as the accountant's calibration test.
  const double reference = 2.1784298628909733;
  EXPECT_GE(p.noise_multiplier, reference * (1.0 - 1e-3));
  EXPECT_LE(p.noise_multiplier, reference * (1.0 + 3e-4));
  EXPECT_EQ(p.sensitivity, 1.5);
  EXPECT_DOUBLE_EQ(p.noise_stddev(), 1.5 * p.noise_multiplier);
  ASSERT_TRUE(p.target_epsilon.has_value());
  EXPECT_EQ(*p.target_epsilon, 1.0);
  EXPECT_EQ(p.accountant, accountant::AccountantKind::kRdp);
  const auto event = p.step_event();
  EXPECT_EQ(event.sample_rate, p.sample_rate);
  EXPECT_EQ(event.noise_multiplier, p.noise_multiplier);
  EXPECT_EQ(event.steps, 1);
}

TEST(DpPlan, EpochsGiveCeilOfEpochsTimesNOverB) {
  TrainConfig c = mnist_config();
  c.steps = 0;
  c.epochs = 3;
  c.target_epsilon = 0;
  c.noise_multiplier = 1.1;
  const DpPlan p = make_dp_plan(c, 1000, 1.0, "one example");
  EXPECT_EQ(p.steps, 12);  // ⌈3 · 1000 / 256⌉ = ⌈11.72⌉
  EXPECT_EQ(p.steps_per_epoch, 4);
  EXPECT_EQ(p.noise_multiplier, 1.1);
  EXPECT_EQ(p.noise_multiplier_source, "given");
  EXPECT_FALSE(p.target_epsilon.has_value());
}

TEST(DpPlan, AResumedRunKeepsItsSigmaAndNormalizedClippingHasSensitivityOne) {
  TrainConfig c = mnist_config();
  c.normalize_clipped = true;
  const DpPlan p = make_dp_plan(c, 60000, 1.0, "one example", 0.83);
  EXPECT_EQ(p.noise_multiplier, 0.83);
  EXPECT_EQ(p.noise_multiplier_source, "checkpoint");
  EXPECT_TRUE(p.normalized);
  EXPECT_EQ(p.max_grad_norm, 1.5);
  EXPECT_EQ(p.noise_stddev(), 0.83);
}

TEST(DpPlan, JsonHoldsEveryPrivacyField) {
  TrainConfig c = mnist_config();
  c.seed = 3;
  const DpPlan p = make_dp_plan(c, 60000, 1.5, "one example", 2.0);
  const auto j = nlohmann::json::parse(p.to_json());
  EXPECT_EQ(j.at("dataset_size").get<std::int64_t>(), 60000);
  EXPECT_EQ(j.at("expected_batch_size").get<std::int64_t>(), 256);
  EXPECT_EQ(j.at("sample_rate").get<double>(), p.sample_rate);
  EXPECT_EQ(j.at("steps").get<std::int64_t>(), 14062);
  EXPECT_EQ(j.at("noise_multiplier").get<double>(), 2.0);
  EXPECT_EQ(j.at("noise_multiplier_source").get<std::string>(), "checkpoint");
  EXPECT_EQ(j.at("max_grad_norm").get<double>(), 1.5);
  EXPECT_EQ(j.at("sensitivity").get<double>(), 1.5);
  EXPECT_EQ(j.at("noise_stddev").get<double>(), 3.0);
  EXPECT_EQ(j.at("accountant").get<std::string>(), "rdp");
  EXPECT_EQ(j.at("delta").get<double>(), 1e-5);
  EXPECT_EQ(j.at("target_epsilon").get<double>(), 1.0);
  EXPECT_EQ(j.at("sampler").get<std::string>(), c.sampler);
  EXPECT_EQ(j.at("privacy_unit").get<std::string>(), "one example");
  EXPECT_TRUE(j.at("seeded").get<bool>());
}

TEST(DpPlan, RefusesWhatCannotBePlanned) {
  const TrainConfig c = mnist_config();
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              make_dp_plan(c, 0, 1.0, "one example");
            }).find("--dataset: the training set is empty"),
            std::string::npos);
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              make_dp_plan(c, 100, 1.0, "one example");
            }).find("--batch-size 256 is larger than the training set (100"),
            std::string::npos);
  for (const double bad : {0.0, -1.0, std::nan("")}) {
    EXPECT_NE(error_of<std::invalid_argument>([&] {
                make_dp_plan(c, 60000, bad, "one example");
              }).find("sensitivity"),
              std::string::npos);
  }
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              make_dp_plan(c, 60000, 1.0, "one example",
                           std::numeric_limits<double>::infinity());
            }).find("noise_multiplier inf (checkpoint) must be finite"),
            std::string::npos);
}

}  // namespace
}  // namespace dptrain::train
