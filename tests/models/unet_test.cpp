// The diffusion UNet: shapes, conditioning, bad input, the registry, and the
// per-example engine against the microbatch oracle in float64 at tiny width
// (flat and per-layer clipping, K = 2 rows per example as with noise
// multiplicity, the null class included).
#include "dptrain/models/unet.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <string>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/models/registry.h"
#include "error_helpers.h"
#include "tiny_unet.h"

namespace m = dptrain::models;
namespace dp = dptrain::dp;

namespace {

m::UNetConfig tiny_config() {
  return dptrain::test_support::tiny_unet_config(/*image_size=*/4,
                                                 /*in_channels=*/2,
                                                 /*num_classes=*/3);
}

using dptrain::test_support::error_of;

TEST(UNet, MapsImagesToImagesOfTheSameShape) {
  torch::manual_seed(0);
  m::UNet net(m::unet_config("unet-small"));
  const auto x = torch::randn({2, 1, 28, 28});
  const auto y = net->forward(x, torch::tensor({0.1, -0.5}),
                              torch::tensor({int64_t{3}, net->null_class()}));
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
}

TEST(UNet, OutputDependsOnTheLabelAndTheNoiseLevel) {
  torch::manual_seed(1);
  m::UNet net(tiny_config());
  torch::NoGradGuard no_grad;
  // The class embedding starts N(0, 1), so labels differ from the start.
  const auto x = torch::randn({1, 2, 4, 4}).repeat({3, 1, 1, 1});
  const auto y = net->forward(x, torch::tensor({0.3, 0.3, -1.0}),
                              torch::tensor({0L, 3L, 0L}));
  EXPECT_FALSE(torch::allclose(y[0], y[1])) << "null class = class 0";
  EXPECT_FALSE(torch::allclose(y[0], y[2])) << "noise level ignored";
}

TEST(UNet, RefusesBadConfigsAndInputsNamingTheField) {
  auto c = tiny_config();
  c.image_size = 5;  // not divisible by 2
  EXPECT_NE(error_of([&] { m::UNet bad(c); }).find("image_size"),
            std::string::npos);
  c = tiny_config();
  c.attention_levels = {2};
  EXPECT_NE(error_of([&] { m::UNet bad(c); }).find("attention_levels"),
            std::string::npos);
  c = tiny_config();
  c.attention_heads = 4;  // does not divide 6
  EXPECT_NE(error_of([&] { m::UNet bad(c); }).find("attention_heads"),
            std::string::npos);
  EXPECT_NE(error_of([] { m::unet_config("unet-huge"); }).find("unet-dpdm"),
            std::string::npos);

  m::UNet net(tiny_config());
  const auto x = torch::randn({2, 2, 4, 4});
  const auto sigma = torch::zeros({2});
  EXPECT_NE(error_of([&] {
              net->forward(torch::randn({2, 1, 4, 4}), sigma,
                           torch::tensor({0L, 1L}));
            }).find("expects images [N, 2, 4, 4]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              net->forward(x, sigma, torch::tensor({0L, 4L}));
            }).find("labels must be in [0, 3]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              net->forward(x, torch::zeros({3}), torch::tensor({0L, 1L}));
            }).find("noise_level"),
            std::string::npos);
}

TEST(UNet, IsInTheRegistryAsADiffusionModel) {
  const auto names = m::list_all_models();
  for (const auto& n : m::unet_config_names()) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
  const auto info = m::model_info("unet-dpdm");
  EXPECT_EQ(info.kind, "diffusion");
  EXPECT_EQ(info.family, "unet");
  EXPECT_EQ(info.image_size, 28);
  EXPECT_EQ(info.in_channels, 1);
  // The registry's count is that of the parameters the module registers.
  int64_t counted = 0;
  for (const auto& p : m::UNet(m::unet_config("unet-dpdm"))->parameters()) {
    counted += p.numel();
  }
  EXPECT_EQ(info.parameters, counted);
  EXPECT_NE(error_of([] {
              m::make_model("unet-small");
            }).find("is a diffusion model"),
            std::string::npos);
}

// Per-row losses of a denoising objective at K rows per example: each row
// its own noise level; labels repeat per example (one of them the null
// class).
struct Batch {
  torch::Tensor x, sigma, labels, target;
};
Batch tiny_batch(int64_t examples, int64_t k) {
  Batch b;
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  b.x = torch::randn({examples * k, 2, 4, 4}, opts);
  b.sigma = torch::randn({examples * k}, opts);
  b.labels = torch::arange(examples).remainder(4).repeat_interleave(k);
  b.target = torch::randn({examples * k, 2, 4, 4}, opts);
  return b;
}

torch::Tensor row_losses(m::UNet& net, const Batch& b, int64_t from,
                         int64_t rows) {
  const auto y =
      net->forward(b.x.narrow(0, from, rows), b.sigma.narrow(0, from, rows),
                   b.labels.narrow(0, from, rows));
  return (y - b.target.narrow(0, from, rows)).pow(2).flatten(1).mean(1);
}

void expect_engine_matches_oracle(dp::ClipMode mode) {
  torch::manual_seed(7);
  m::UNet net(tiny_config());
  net->to(torch::kDouble);
  const int64_t examples = 4, k = 2;
  const Batch b = tiny_batch(examples, k);
  // C small enough that every example is clipped, large enough to matter.
  const dp::ClippingOptions options =
      dp::ClippingOptions(0.05).mode(mode).diagnostics(true);

  dp::GradientEngine engine(net.ptr(), options);
  const auto params = engine.parameters();
  {
    auto recording = engine.record();
    const auto result =
        engine.clip_and_accumulate(row_losses(net, b, 0, examples * k), k);
    ASSERT_TRUE(result.diagnostics.has_value());
    EXPECT_GT(result.diagnostics->fraction_clipped, 0.0)
        << "C is too large for the test to exercise clipping";
  }
  std::vector<torch::Tensor> from_engine;
  for (auto& p : params) {
    from_engine.push_back(p.grad().clone());
    p.mutable_grad() = torch::Tensor();
  }
  dp::microbatch_clip_and_accumulate(
      *net, examples, [&](int64_t i) { return row_losses(net, b, i * k, k); },
      options);
  for (std::size_t i = 0; i < params.size(); ++i) {
    ASSERT_TRUE(params[i].grad().defined()) << "parameter " << i;
    EXPECT_TRUE(torch::allclose(from_engine[i], params[i].grad(), 1e-9, 1e-11))
        << "parameter " << i << ": max diff "
        << (from_engine[i] - params[i].grad()).abs().max().item<double>();
  }
}

TEST(UNet, EngineMatchesTheMicrobatchOracleFlat) {
  expect_engine_matches_oracle(dp::ClipMode::kFlat);
}

TEST(UNet, EngineMatchesTheMicrobatchOraclePerLayer) {
  expect_engine_matches_oracle(dp::ClipMode::kPerLayer);
}

}  // namespace
