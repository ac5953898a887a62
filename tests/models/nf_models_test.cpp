// NF-ResNet and NFNet. Expected counts: from the deepmind-research/nfnets
// and JAX Privacy definitions, counted by hand in a separate script
// (published, rounded: NF-ResNet-50 25.56M, F0 71.49M, F1 132.63M,
// F3 254.92M).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "dptrain/models/activations.h"
#include "dptrain/models/nf_common.h"
#include "dptrain/models/nf_resnet.h"
#include "dptrain/models/nfnet.h"
#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::expect_error;

m::NFNetOptions tiny_nfnet() {
  return m::NFNetOptions()
      .depths({1, 2, 1, 1})
      .widths({8, 16, 16, 24})
      .stem_channels({2, 4, 4})
      .group_width(4)
      .num_classes(5);
}

m::NFResNetOptions tiny_nf_resnet() {
  return m::NFResNetOptions()
      .depths({1, 2, 1, 1})
      .widths({8, 8, 16, 16})
      .stem_channels(4)
      .num_classes(5);
}

TEST(NFNet, ConfigCountsMatchPublished) {
  EXPECT_EQ(m::nfnet_parameter_count(m::nfnet_variant("F0")), 71489284);
  EXPECT_EQ(m::nfnet_parameter_count(m::nfnet_variant("F1")), 132634256);
  EXPECT_EQ(m::nfnet_parameter_count(m::nfnet_variant("F2")), 193779228);
  EXPECT_EQ(m::nfnet_parameter_count(m::nfnet_variant("f3")), 254924200);
}

TEST(NFResNet, ConfigCountMatchesPublished) {
  EXPECT_EQ(m::nf_resnet_parameter_count(m::nf_resnet_variant(50)), 25557048);
}

TEST(NFNet, ConfigCountMatchesInstanceAtTinyWidths) {
  for (auto opt : {tiny_nfnet(), tiny_nfnet().group_width(2).se_ratio(0.25),
                   tiny_nfnet().final_conv_multiplier(1).in_channels(1)}) {
    m::NFNet net(opt);
    EXPECT_EQ(m::count_parameters(*net), m::nfnet_parameter_count(opt));
  }
}

TEST(NFResNet, ConfigCountMatchesInstanceAtTinyWidths) {
  for (auto opt : {tiny_nf_resnet(), tiny_nf_resnet().use_se(true),
                   tiny_nf_resnet().bottleneck_ratio(0.5).in_channels(1)}) {
    m::NFResNet net(opt);
    EXPECT_EQ(m::count_parameters(*net), m::nf_resnet_parameter_count(opt));
  }
}

TEST(NFNet, SlowF0InstanceHasPublishedCount) {
  m::NFNet net(m::nfnet_variant("F0"));
  EXPECT_EQ(m::count_parameters(*net), 71489284);
}

TEST(NFResNet, SlowResNet50InstanceHasPublishedCount) {
  m::NFResNet net(m::nf_resnet_variant(50));
  EXPECT_EQ(m::count_parameters(*net), 25557048);
}

TEST(NFNet, ForwardShapeAndPaths) {
  m::NFNet net(tiny_nfnet());
  EXPECT_EQ(net->forward(torch::randn({2, 3, 17, 17})).sizes(),
            (std::vector<int64_t>{2, 5}));
  const auto p = net->named_parameters();
  for (const char* name :
       {"stem.conv0.weight", "stem.conv3.gain", "blocks.0.conv0.weight",
        "blocks.0.conv1b.bias", "blocks.0.conv_shortcut.weight",
        "blocks.1.se.fc0.weight", "blocks.1.se.fc1.bias",
        "blocks.1.skip_gain.scale", "final_conv.weight", "classifier.bias"}) {
    EXPECT_TRUE(p.contains(name)) << name;
  }
  // Block 2 (second of stage 1) keeps its shape: no projection.
  EXPECT_FALSE(p.contains("blocks.2.conv_shortcut.weight"));
  // Grouped 3×3 conv: width 8 (16·0.5) in groups of 4.
  EXPECT_EQ(net->blocks[1]->conv1->options.groups(), 2);
}

TEST(NFResNet, ForwardShapeAndPaths) {
  m::NFResNet net(tiny_nf_resnet());
  EXPECT_EQ(net->forward(torch::randn({2, 3, 21, 21})).sizes(),
            (std::vector<int64_t>{2, 5}));
  const auto p = net->named_parameters();
  for (const char* name :
       {"stem.weight", "blocks.0.conv0.weight", "blocks.0.conv_shortcut.weight",
        "blocks.1.conv2.gain", "blocks.4.skip_gain.scale",
        "classifier.weight"}) {
    EXPECT_TRUE(p.contains(name)) << name;
  }
  EXPECT_FALSE(p.contains("blocks.2.conv_shortcut.weight"));
}

TEST(NFNet, BetaFollowsExpectedStd) {
  // β = 1/expected std; std resets to 1 at each stage's first block and
  // grows by α² per block (NFNet sources). Depths {1, 2, 1, 1}.
  m::NFNet net(tiny_nfnet());
  EXPECT_DOUBLE_EQ(net->blocks[0]->beta, 1.0);
  EXPECT_DOUBLE_EQ(net->blocks[1]->beta, 1.0 / std::sqrt(1.0 + 0.04));
  EXPECT_DOUBLE_EQ(net->blocks[2]->beta, 1.0 / std::sqrt(1.0 + 0.04));
  EXPECT_DOUBLE_EQ(net->blocks[3]->beta, 1.0 / std::sqrt(1.0 + 0.08));
  EXPECT_DOUBLE_EQ(net->blocks[4]->beta, 1.0 / std::sqrt(1.0 + 0.04));
}

TEST(NFNet, SkipInitMakesBlocksIdentityOrProjection) {
  // skip_gain = 0 at init: a non-projecting block returns its input.
  m::NFNet net(tiny_nfnet());
  auto x = torch::randn({2, 16, 5, 5});
  EXPECT_TRUE(torch::equal(net->blocks[2](x), x));
}

TEST(NFNet, StochasticDepthDropsWholeRowsInTraining) {
  torch::manual_seed(2);
  auto x = torch::ones({400, 3, 2, 2});
  auto y = m::stochastic_depth(x, 0.25, /*training=*/true);
  auto kept = y.flatten(1).sum(1) / 12.0;
  EXPECT_TRUE(torch::all((kept == 0) | (kept == 1)).item<bool>());
  // Binomial(400, 0.75): mean 300, sd 8.7; ±4 sd two-sided.
  EXPECT_NEAR(kept.sum().item<double>(), 300.0, 35.0);
  EXPECT_TRUE(torch::equal(m::stochastic_depth(x, 0.25, false), x));
  expect_error<std::invalid_argument>(
      [&] { m::stochastic_depth(x, 1.0, true); },
      "stochastic depth rate must be in [0, 1), got 1");
}

TEST(NFCommon, SamePoolingMatchesTensorFlow) {
  // 1×1×3×3 ramp; TF SAME max pool 3/2 pads (1, 1): outputs 2×2.
  auto x = torch::arange(9, torch::kFloat).reshape({1, 1, 3, 3});
  auto mp = m::max_pool_same(x, 3, 2);
  EXPECT_TRUE(torch::equal(mp.flatten(), torch::tensor({4.f, 5.f, 7.f, 8.f})));
  // Even size 4: total pad 1, all on the right/bottom.
  auto x4 = torch::arange(16, torch::kFloat).reshape({1, 1, 4, 4});
  EXPECT_TRUE(torch::equal(m::max_pool_same(x4, 3, 2).flatten(),
                           torch::tensor({10.f, 11.f, 14.f, 15.f})));
  // Avg pool 2/2 SAME on 3×3 excludes padding: corner windows of 2, 2, 1.
  auto ap = m::avg_pool_2x2_same(x).flatten();
  EXPECT_TRUE(torch::allclose(ap, torch::tensor({2.f, 3.5f, 6.5f, 8.f})));
}

TEST(NFVariants, RejectUnknownNames) {
  expect_error<std::invalid_argument>(
      [] { m::nfnet_variant("F9"); },
      "NFNet variant must be F0 ... F7, got 'F9'");
  expect_error<std::invalid_argument>(
      [] { m::nf_resnet_variant(34); },
      "NF-ResNet depth must be 50, 101, 152 or 200, got 34");
  expect_error<std::invalid_argument>(
      [] { m::NFNet(tiny_nfnet().group_width(16)); },
      "must be >= group_width 16");
  expect_error<std::invalid_argument>(
      [] {
        m::NFResNet(tiny_nf_resnet().depths({1, 1}));
      },
      "depths and widths must have 4 entries, got 2 and 4");
}

// ∫ f(z)² φ(z) dz − (∫ f φ)² by the trapezoid rule on [−12, 12].
double gaussian_variance(m::Activation a) {
  auto z = torch::linspace(-12, 12, 200001, torch::kDouble);
  auto phi = torch::exp(-z * z / 2) / std::sqrt(2 * M_PI);
  auto f = m::activate(z, a);
  const double dz = 24.0 / 200000;
  const double mean = torch::trapezoid(f * phi, dz).item<double>();
  const double sq = torch::trapezoid(f * f * phi, dz).item<double>();
  return sq - mean * mean;
}

TEST(Activations, ScaledActivationsHaveUnitGaussianVariance) {
  // The published γ are Monte-Carlo estimates: within 0.2% of exact.
  for (auto a : {m::Activation::kScaledRelu, m::Activation::kScaledGelu,
                 m::Activation::kScaledSilu, m::Activation::kScaledTanh}) {
    EXPECT_NEAR(gaussian_variance(a), 1.0, 4e-3) << m::to_string(a);
  }
  // relu: Var = 1/2 − 1/(2π) exactly.
  EXPECT_NEAR(gaussian_variance(m::Activation::kRelu), 0.5 - 0.5 / M_PI, 1e-9);
}

TEST(Activations, NamesRoundTripAndUnknownIsRejected) {
  for (const auto& n : m::activation_names()) {
    EXPECT_EQ(m::to_string(m::parse_activation(n)), n);
  }
  expect_error<std::invalid_argument>(
      [] { m::parse_activation("swishy"); },
      "activation must be one of identity, relu");
}

// gelu_exact's backward for a non-contiguous output gradient (behind a
// transpose, as under autocast): float32 against float64 autograd, bf16
// against float32 autograd of the same bf16 values. torch::gelu's own CPU
// kernel is off by O(1) here in float32 and gives NaN in bf16 (LibTorch 1.13).
TEST(Activations, GeluExactBf16BackwardTakesANonContiguousGradient) {
  torch::manual_seed(0);
  const auto x = torch::randn({2, 16, 32}).to(torch::kBFloat16);
  const auto g = torch::randn({2, 32, 16}).to(torch::kBFloat16).transpose(1, 2);
  ASSERT_FALSE(g.is_contiguous());
  auto xb = x.clone().requires_grad_(true);
  const auto yb = m::gelu_exact(xb);
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  const auto gb = torch::autograd::grad({yb}, {xb}, {g})[0];
  auto xf = x.to(torch::kFloat).requires_grad_(true);
  const auto gf = torch::autograd::grad({torch::gelu(xf)}, {xf},
                                        {g.to(torch::kFloat).contiguous()})[0];
  const double err =
      ((gb.to(torch::kFloat) - gf).norm() / gf.norm()).item<double>();
  EXPECT_LE(err, 1e-2);  // bf16 rounding of the result; NaN fails too
  auto x32 = torch::randn({2, 16, 32}).requires_grad_(true);
  const auto g32 = torch::randn({2, 32, 16}).transpose(1, 2);
  const auto got = torch::autograd::grad({m::gelu_exact(x32)}, {x32}, {g32})[0];
  auto x64 = x32.detach().to(torch::kDouble).requires_grad_(true);
  const auto want = torch::autograd::grad(
      {torch::gelu(x64)}, {x64}, {g32.to(torch::kDouble).contiguous()})[0];
  EXPECT_TRUE(torch::allclose(got.to(torch::kDouble), want, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(m::gelu_exact(x.to(torch::kFloat)),
                              torch::gelu(x.to(torch::kFloat))));
}

}  // namespace
