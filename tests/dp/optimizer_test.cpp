#include "dptrain/dp/optim/optimizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "archive_helpers.h"
#include "error_helpers.h"

namespace dptrain::dp {
namespace {

using dptrain::test_support::error_of;
using dptrain::test_support::round_trip;

at::Tensor param(std::initializer_list<double> values) {
  return torch::tensor(std::vector<double>(values), torch::kDouble)
      .requires_grad_();
}

void set_grad(at::Tensor& p, std::initializer_list<double> values) {
  p.mutable_grad() = torch::tensor(std::vector<double>(values), torch::kDouble);
}

void expect_values(const at::Tensor& t, std::initializer_list<double> values) {
  EXPECT_TRUE(at::allclose(
      t, torch::tensor(std::vector<double>(values), torch::kDouble), 0, 1e-12))
      << t;
}

TEST(DpOptimizer, SgdMomentumMatchesHandComputation) {
  // lr 0.1, momentum 0.9, weight decay 0.01 (L2 on the noisy gradient):
  // d1 = g1 + 0.01·p0 = (0.51, 0.23); buf1 = d1; p1 = p0 − 0.1·buf1
  // d2 = g2 + 0.01·p1 = (−0.99051, 0.97977); buf2 = 0.9·buf1 + d2
  //    = (−0.53151, 1.18677); p2 = p1 − 0.1·buf2.
  at::Tensor p = param({1.0, -2.0});
  DpOptimizer optimizer({p}, {OptimizerKind::kSgd, 0.1, 0.9, false, 0.01});
  set_grad(p, {0.5, 0.25});
  optimizer.step();
  expect_values(p, {0.949, -2.023});
  set_grad(p, {-1.0, 1.0});
  optimizer.step();
  expect_values(p, {1.002151, -2.141677});
}

TEST(DpOptimizer, SgdNesterovMatchesHandComputation) {
  // d1 = (0.51, 0.23); buf1 = d1; step direction d1 + 0.9·buf1 = (0.969,
  // 0.437).
  at::Tensor p = param({1.0, -2.0});
  DpOptimizer optimizer({p}, {OptimizerKind::kSgd, 0.1, 0.9, true, 0.01});
  set_grad(p, {0.5, 0.25});
  optimizer.step();
  expect_values(p, {0.9031, -2.0437});
}

TEST(DpOptimizer, WeightDecayNeverEntersThePrivateGradient) {
  at::Tensor p = param({1.0, -2.0});
  DpOptimizer optimizer({p}, {OptimizerKind::kSgd, 0.1, 0.9, false, 0.5});
  set_grad(p, {0.5, 0.25});
  optimizer.step();
  expect_values(p.grad(), {0.5, 0.25});  // .grad as privatised, untouched
}

TEST(DpOptimizer, AdamWDecouplesWeightDecayAndAdamCouplesIt) {
  // One step, g = 0.5, p0 = 1, lr 0.1, wd 0.1, betas (0.9, 0.999):
  // bias-corrected m̂/√v̂ = ±1, so Adam moves by lr·1 (up to eps).
  // AdamW: p = 1·(1 − 0.1·0.1) − 0.1 = 0.89.
  // Adam: the gradient becomes 0.5 + 0.1·1 = 0.6, still m̂/√v̂ = 1: p = 0.9.
  OptimizerOptions options;
  options.lr = 0.1;
  options.weight_decay = 0.1;
  options.kind = OptimizerKind::kAdamW;
  at::Tensor a = param({1.0});
  DpOptimizer adamw({a}, options);
  set_grad(a, {0.5});
  adamw.step();
  EXPECT_NEAR(a.item<double>(), 0.89, 1e-6);
  options.kind = OptimizerKind::kAdam;
  at::Tensor b = param({1.0});
  DpOptimizer adam({b}, options);
  set_grad(b, {0.5});
  adam.step();
  EXPECT_NEAR(b.item<double>(), 0.9, 1e-6);
}

TEST(DpOptimizer, SetLearningRateChangesTheNextStep) {
  at::Tensor p = param({1.0});
  DpOptimizer optimizer({p}, {OptimizerKind::kSgd, 0.1});
  optimizer.set_learning_rate(0.5);
  EXPECT_DOUBLE_EQ(optimizer.learning_rate(), 0.5);
  set_grad(p, {2.0});
  optimizer.step();
  expect_values(p, {0.0});
  optimizer.zero_grad();
  EXPECT_FALSE(p.grad().defined());
  EXPECT_EQ(error_of([&] { optimizer.set_learning_rate(0); }),
            "lr must be > 0, got 0");
}

TEST(DpOptimizer, StateRoundTripContinuesMomentum) {
  OptimizerOptions options{OptimizerKind::kSgd, 0.1, 0.9};
  at::Tensor p = param({1.0, -2.0});
  DpOptimizer original({p}, options);
  set_grad(p, {0.5, 0.25});
  original.step();
  at::Tensor q = p.detach().clone().requires_grad_();
  DpOptimizer resumed({q}, options);
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) { resumed.load(in); });
  set_grad(p, {-1.0, 1.0});
  set_grad(q, {-1.0, 1.0});
  original.step();
  resumed.step();
  EXPECT_TRUE(at::equal(p, q));
}

TEST(DpOptimizer, LoadRefusesAnotherKindOrShape) {
  at::Tensor p = param({1.0, -2.0});
  DpOptimizer sgd({p}, {OptimizerKind::kSgd, 0.1, 0.9});
  set_grad(p, {0.5, 0.25});
  sgd.step();
  OptimizerOptions adam_options;
  adam_options.kind = OptimizerKind::kAdam;
  at::Tensor a = param({1.0, -2.0});
  DpOptimizer adam({a}, adam_options);
  EXPECT_EQ(error_of([&] {
              round_trip([&](auto& out) { sgd.save(out); },
                         [&](auto& in) { adam.load(in); });
            }),
            "optimizer checkpoint mismatch: kind is sgd in the checkpoint, "
            "adam here");
  at::Tensor wide = param({1.0, 2.0, 3.0});
  DpOptimizer other({wide}, {OptimizerKind::kSgd, 0.1, 0.9});
  EXPECT_NE(error_of([&] {
              round_trip([&](auto& out) { sgd.save(out); },
                         [&](auto& in) { other.load(in); });
            }).find("optimizer checkpoint does not fit these parameters"),
            std::string::npos);
  // Nothing was loaded: a step from scratch has no momentum history.
  set_grad(wide, {1.0, 1.0, 1.0});
  other.step();
  expect_values(wide, {0.9, 1.9, 2.9});
}

TEST(DpOptimizer, RejectsBadOptions) {
  at::Tensor p = param({1.0});
  const auto error = [&](OptimizerOptions o) {
    return error_of([&] { DpOptimizer({p}, o); });
  };
  EXPECT_EQ(error({OptimizerKind::kSgd, -1}), "lr must be > 0, got -1");
  EXPECT_EQ(error({OptimizerKind::kSgd, 0.1, 1.0}),
            "momentum must be in [0, 1), got 1");
  EXPECT_EQ(error({OptimizerKind::kSgd, 0.1, 0.0, true}),
            "nesterov needs momentum > 0, got momentum 0");
  EXPECT_EQ(error({OptimizerKind::kSgd, 0.1, 0.0, false, -0.1}),
            "weight_decay must be >= 0, got -0.1");
  EXPECT_EQ(error({OptimizerKind::kAdam, 0.1, 0.9}),
            "momentum and nesterov apply to sgd only, not adam");
  EXPECT_EQ(error({OptimizerKind::kAdam, 0.1, 0, false, 0, 1.0}),
            "beta1 must be in [0, 1), got 1");
  EXPECT_EQ(error({OptimizerKind::kAdam, 0.1, 0, false, 0, 0.9, -0.5}),
            "beta2 must be in [0, 1), got -0.5");
  EXPECT_EQ(error({OptimizerKind::kAdam, 0.1, 0, false, 0, 0.9, 0.99, 0}),
            "eps must be > 0, got 0");
}

TEST(OptimizerKind, ParsesNamesAndRejectsOthers) {
  EXPECT_EQ(parse_optimizer_kind("sgd"), OptimizerKind::kSgd);
  EXPECT_EQ(parse_optimizer_kind("adam"), OptimizerKind::kAdam);
  EXPECT_EQ(parse_optimizer_kind("adamw"), OptimizerKind::kAdamW);
  EXPECT_EQ(error_of([] { parse_optimizer_kind("lamb"); }),
            "optimizer must be one of sgd, adam, adamw, got 'lamb'");
}

}  // namespace
}  // namespace dptrain::dp
