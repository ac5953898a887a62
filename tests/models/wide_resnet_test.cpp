// WRN-d-k of De et al. 2022. Expected counts: from the JAX Privacy
// WideResNet definition (counted by hand in a separate script: convs
// k²·in·out + gain + bias, GroupNorm scale + offset), rounded in the paper
// to 2.754M, 8.961M, 36.50M.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dptrain/models/wide_resnet.h"
#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::expect_error;

TEST(WideResNet, ConfigCountsMatchPublished) {
  EXPECT_EQ(m::wide_resnet_parameter_count(m::WideResNetOptions(16, 4)),
            2753818);
  EXPECT_EQ(m::wide_resnet_parameter_count(m::WideResNetOptions(40, 4)),
            8961306);
  EXPECT_EQ(m::wide_resnet_parameter_count(m::WideResNetOptions(28, 10)),
            36500378);
}

TEST(WideResNet, Wrn16x4InstanceHasPublishedCount) {
  m::WideResNet net(m::WideResNetOptions(16, 4));
  EXPECT_EQ(m::count_parameters(*net), 2753818);
}

TEST(WideResNet, SlowLargeInstancesHavePublishedCounts) {
  EXPECT_EQ(m::count_parameters(*m::WideResNet(m::WideResNetOptions(40, 4))),
            8961306);
  EXPECT_EQ(m::count_parameters(*m::WideResNet(m::WideResNetOptions(28, 10))),
            36500378);
}

TEST(WideResNet, ConfigCountMatchesInstanceAtTinyWidths) {
  for (auto opt :
       {m::WideResNetOptions(10, 1).stem_channels(4).norm_groups(2),
        m::WideResNetOptions(16, 2).stem_channels(4).norm_groups(4).num_classes(
            3),
        m::WideResNetOptions(10, 3).in_channels(1).stem_channels(8).norm_groups(
            8)}) {
    m::WideResNet net(opt);
    EXPECT_EQ(m::count_parameters(*net), m::wide_resnet_parameter_count(opt));
  }
}

TEST(WideResNet, ModulePathsFollowTheDocumentedLayout) {
  m::WideResNet net(
      m::WideResNetOptions(16, 1).stem_channels(4).norm_groups(2));
  const auto params = net->named_parameters();
  for (const char* name :
       {"stem.weight", "stem.gain", "stem.bias", "stages.0.0.norm0.weight",
        "stages.0.0.conv0.weight", "stages.0.0.shortcut_norm.bias",
        "stages.0.0.shortcut_conv.gain", "stages.2.1.conv1.bias",
        "final_norm.weight", "classifier.weight"}) {
    EXPECT_TRUE(params.contains(name)) << name;
  }
  // Only the first block of a stage has a projection shortcut.
  EXPECT_FALSE(params.contains("stages.1.1.shortcut_conv.weight"));
}

TEST(WideResNet, ForwardShapesWithSamePadding) {
  m::WideResNet net(
      m::WideResNetOptions(10, 1).stem_channels(4).norm_groups(2).num_classes(
          7));
  EXPECT_EQ(net->forward(torch::randn({2, 3, 32, 32})).sizes(),
            (std::vector<int64_t>{2, 7}));
  // Odd size: SAME keeps ceil(H / stride): 7 → 7 → 4 → 2.
  auto x = torch::randn({1, 3, 7, 7});
  auto h = net->stem(x);
  h = net->blocks[0][0](h);
  h = net->blocks[1][0](h);
  EXPECT_EQ(h.size(2), 4);
  h = net->blocks[2][0](h);
  EXPECT_EQ(h.size(2), 2);
  EXPECT_EQ(net->forward(x).sizes(), (std::vector<int64_t>{1, 7}));
}

TEST(WideResNet, RowsAreIndependent) {
  // GroupNorm normalises per example: row 0's logits do not depend on row 1.
  torch::manual_seed(3);
  m::WideResNet net(
      m::WideResNetOptions(10, 1).stem_channels(4).norm_groups(2));
  auto x = torch::randn({2, 3, 8, 8});
  auto both = net->forward(x);
  auto alone = net->forward(x.slice(0, 0, 1));
  EXPECT_TRUE(torch::allclose(both.slice(0, 0, 1), alone, 1e-5, 1e-6));
}

TEST(WideResNet, RejectsBadOptions) {
  expect_error<std::invalid_argument>(
      [] { m::WideResNet(m::WideResNetOptions(15, 4)); },
      "depth must be 6n + 4 with n >= 1, got 15");
  expect_error<std::invalid_argument>(
      [] { m::WideResNet(m::WideResNetOptions(16, 0)); },
      "width must be >= 1, got 0");
  expect_error<std::invalid_argument>(
      [] { m::WideResNet(m::WideResNetOptions(16, 1).norm_groups(3)); },
      "norm_groups must divide");
  expect_error<std::invalid_argument>(
      [] { m::WideResNet(m::WideResNetOptions(16, 1).dropout(1.0)); },
      "dropout must be in [0, 1), got 1");
}

TEST(WideResNet, DropoutOnlyInTraining) {
  torch::manual_seed(1);
  m::WideResNet net(
      m::WideResNetOptions(10, 1).stem_channels(4).norm_groups(2).dropout(0.5));
  auto x = torch::randn({2, 3, 8, 8});
  net->eval();
  EXPECT_TRUE(torch::equal(net->forward(x), net->forward(x)));
  net->train();
  EXPECT_FALSE(torch::equal(net->forward(x), net->forward(x)));
}

}  // namespace
