#include "dptrain/dp/optim/ema.h"

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

void set(at::Tensor& p, double value) {
  torch::NoGradGuard no_grad;
  p.fill_(value);
}

TEST(Ema, WarmUpMatchesHandComputation) {
  // θ0 = 0, then θ = 10, 20, 30 with decay 0.99:
  // μ0 = 1/10: 0.1·0 + 0.9·10 = 9; μ1 = 2/11: (2·9 + 9·20)/11 = 18;
  // μ2 = 3/12: 0.25·18 + 0.75·30 = 27.
  at::Tensor p = torch::zeros({2}, torch::kDouble).requires_grad_();
  Ema ema({p}, 0.99);
  const double expected[] = {9, 18, 27};
  for (int t = 0; t < 3; ++t) {
    set(p, 10.0 * (t + 1));
    ema.update({p});
    EXPECT_NEAR(ema.averages()[0][0].item<double>(), expected[t], 1e-12);
  }
  EXPECT_EQ(ema.num_updates(), 3);
}

TEST(Ema, DecayIsCappedByTheWarmUp) {
  at::Tensor p = torch::zeros({1});
  Ema ema({p}, 0.5);
  EXPECT_DOUBLE_EQ(ema.decay_at(0), 0.1);
  EXPECT_DOUBLE_EQ(ema.decay_at(5), 6.0 / 15.0);
  EXPECT_DOUBLE_EQ(ema.decay_at(10), 0.5);  // 11/20 > 0.5
  EXPECT_DOUBLE_EQ(ema.weight(10), 0.5);
}

TEST(PolyakAverage, IsTheUniformMeanOfTheIterates) {
  at::Tensor p = torch::full({3}, 5.0, torch::kDouble);
  PolyakAverage polyak({p});
  at::Tensor out = torch::zeros({3}, torch::kDouble);
  polyak.copy_to({out});
  EXPECT_TRUE(at::equal(out, p));  // no update yet: the initial parameters
  const double iterates[] = {1, 2, 6};
  const double means[] = {1, 1.5, 3};
  for (int t = 0; t < 3; ++t) {
    set(p, iterates[t]);
    polyak.update({p});
    EXPECT_NEAR(polyak.averages()[0][1].item<double>(), means[t], 1e-12);
  }
}

TEST(Ema, SwapEvaluatesTheAverageAndSwapsBack) {
  torch::nn::Linear model(3, 2);
  Ema ema(*model, 0.9);
  const at::Tensor initial = model->weight.detach().clone();
  {
    torch::NoGradGuard no_grad;
    model->weight.add_(1.0);
  }
  ema.update(*model);  // avg = 0.1·w0 + 0.9·(w0 + 1) = w0 + 0.9
  const at::Tensor last = model->weight.detach().clone();
  ema.swap(*model);
  EXPECT_TRUE(at::allclose(model->weight, initial + 0.9));
  ema.swap(*model);
  EXPECT_TRUE(at::equal(model->weight, last));
  ema.copy_to(*model);
  EXPECT_TRUE(at::allclose(model->weight, initial + 0.9));
  EXPECT_FALSE(model->weight.grad().defined());
}

TEST(Ema, StateRoundTripContinuesTheAverage) {
  at::Tensor p = torch::zeros({2}, torch::kDouble);
  Ema original({p}, 0.99);
  set(p, 10);
  original.update({p});
  at::Tensor q = torch::zeros({2}, torch::kDouble);
  Ema resumed({q}, 0.99);
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) { resumed.load(in); });
  EXPECT_EQ(resumed.num_updates(), 1);
  set(p, 20);
  original.update({p});
  resumed.update({p});
  EXPECT_TRUE(at::equal(original.averages()[0], resumed.averages()[0]));
  EXPECT_NEAR(resumed.averages()[0][0].item<double>(), 18, 1e-12);
}

TEST(Ema, LoadRefusesAnotherKindDecayOrShape) {
  at::Tensor p = torch::ones({2});
  Ema saved({p}, 0.99);
  saved.update({p});
  at::Tensor q = torch::zeros({2});
  PolyakAverage polyak({q});
  EXPECT_EQ(error_of([&] {
              round_trip([&](auto& out) { saved.save(out); },
                         [&](auto& in) { polyak.load(in); });
            }),
            "polyak average checkpoint mismatch: kind is ema in the "
            "checkpoint, polyak here");
  Ema other_decay({q}, 0.9);
  EXPECT_NE(error_of([&] {
              round_trip([&](auto& out) { saved.save(out); },
                         [&](auto& in) { other_decay.load(in); });
            }).find("ema average checkpoint mismatch: decay is 0.98999"),
            std::string::npos);
  at::Tensor wide = torch::zeros({3});
  Ema other_shape({wide}, 0.99);
  EXPECT_EQ(error_of([&] {
              round_trip([&](auto& out) { saved.save(out); },
                         [&](auto& in) { other_shape.load(in); });
            }),
            "ema average checkpoint mismatch: average 0 has shape [2] in the "
            "checkpoint, [3] here");
  EXPECT_EQ(other_shape.num_updates(), 0);
  EXPECT_TRUE(at::equal(other_shape.averages()[0], wide));
}

TEST(Ema, RejectsBadDecayAndOtherParameters) {
  at::Tensor p = torch::zeros({2});
  EXPECT_EQ(error_of([&] { Ema({p}, 1.0); }),
            "ema_decay must be in [0, 1), got 1");
  EXPECT_EQ(error_of([&] { Ema({p}, -0.1); }),
            "ema_decay must be in [0, 1), got -0.1");
  Ema ema({p}, 0.9);
  EXPECT_EQ(error_of([&] {
              ema.update({p, p});
            }),
            "ema: expected 1 parameters, got 2");
  EXPECT_EQ(error_of([&] { ema.update({torch::zeros({4})}); }),
            "ema: parameter 0 has shape [4] Float, the average [2] Float");
}

}  // namespace
}  // namespace dptrain::dp
