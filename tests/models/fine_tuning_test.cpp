// Fine-tuning helpers: new heads, trainable subsets.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dptrain/models/fine_tuning.h"
#include "dptrain/models/wide_resnet.h"
#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::expect_error;

m::WideResNet small_wrn() {
  return m::WideResNet(
      m::WideResNetOptions(10, 1).stem_channels(4).norm_groups(2));
}

TEST(FineTuning, ResetClassifierChangesClassesKeepsDtype) {
  auto net = small_wrn();
  net->to(torch::kDouble);
  net->reset_classifier(3);
  EXPECT_EQ(net->num_classes(), 3);
  EXPECT_EQ(net->classifier()->weight.scalar_type(), torch::kDouble);
  EXPECT_EQ(net->named_parameters()["classifier.weight"].size(0), 3);
  EXPECT_EQ(net->forward(torch::randn({2, 3, 8, 8}, torch::kDouble)).size(1),
            3);
  // Fan-in init (Haiku VarianceScaling(1.0)): bias zero, weight truncated
  // at ±2σ with σ = 1/(√16 · 0.8796) for the 16 pooled features.
  EXPECT_TRUE(
      torch::equal(net->classifier()->bias, torch::zeros({3}, torch::kDouble)));
  EXPECT_LE(net->classifier()->weight.abs().max().item<double>(),
            2.0 / (4.0 * 0.87962566103423978) + 1e-12);
  expect_error<std::invalid_argument>([&] { net->reset_classifier(0); },
                                      "num_classes must be >= 1, got 0");
}

TEST(FineTuning, OnlyClassifierTrains) {
  auto net = small_wrn();
  auto names = m::train_only_classifier(*net);
  EXPECT_EQ(names,
            (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  for (const auto& p : net->named_parameters()) {
    EXPECT_EQ(p.value().requires_grad(), p.key().rfind("classifier.", 0) == 0)
        << p.key();
  }
  EXPECT_EQ(m::count_parameters(*net, /*trainable_only=*/true), 16 * 10 + 10);
  m::unfreeze_all(*net);
  EXPECT_EQ(m::count_parameters(*net, true), m::count_parameters(*net));
}

TEST(FineTuning, PatternSelectsLayers) {
  auto net = small_wrn();
  auto names = m::set_trainable(*net, "^stages\\.2\\.|^final_norm\\.");
  for (const auto& n : names) {
    EXPECT_TRUE(n.rfind("stages.2.", 0) == 0 || n.rfind("final_norm.", 0) == 0)
        << n;
  }
  EXPECT_FALSE(net->stem->weight.requires_grad());
  EXPECT_TRUE(net->final_norm->weight.requires_grad());
  EXPECT_FALSE(net->classifier()->weight.requires_grad());
}

TEST(FineTuning, PrepareResetsHeadAndFreezes) {
  auto net = small_wrn();
  auto names = m::prepare_fine_tuning(*net, {5, "classifier"});
  EXPECT_EQ(net->num_classes(), 5);
  EXPECT_EQ(names.size(), 2u);
  EXPECT_TRUE(net->classifier()->weight.requires_grad());
  EXPECT_FALSE(net->stem->gain.requires_grad());
  names = m::prepare_fine_tuning(*net, {0, "all"});
  EXPECT_EQ(names.size(), net->parameters().size());
  EXPECT_TRUE(net->stem->gain.requires_grad());
}

TEST(FineTuning, BadPatternsAreNamed) {
  auto net = small_wrn();
  expect_error<std::invalid_argument>(
      [&] { m::set_trainable(*net, "[oops"); },
      "trainable pattern '[oops' is not a valid regex");
  expect_error<std::invalid_argument>(
      [&] { m::set_trainable(*net, "^decoder"); },
      "trainable pattern '^decoder' matches no parameter");
  // A failed pattern leaves the model as it was.
  EXPECT_TRUE(net->stem->weight.requires_grad());
  expect_error<std::invalid_argument>(
      [&] {
        m::prepare_fine_tuning(*net, {-1, "all"});
      },
      "num_classes must be >= 0 (0 keeps the head), got -1");
}

}  // namespace
