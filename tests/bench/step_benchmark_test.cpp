// The step benchmark: it reports what it measured, and the DP step it times
// really clips (engine sum = microbatch oracle sum) and adds noise of σ·C.
#include "dptrain/bench/step_benchmark.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace dptrain::bench {
namespace {

StepBenchmarkOptions tiny(const std::string& model) {
  StepBenchmarkOptions o;
  o.model = model;
  o.batch_size = 4;
  o.seq_len = 8;
  o.steps = 2;
  o.warmup_steps = 1;
  return o;
}

std::vector<torch::Tensor> grads_of(const StepRunner& runner) {
  std::vector<torch::Tensor> out;
  for (const auto& p : runner.parameters()) {
    EXPECT_TRUE(p.grad().defined());
    out.push_back(p.grad().detach().clone());
  }
  return out;
}

torch::Tensor flat(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> parts;
  for (const auto& t : ts) parts.push_back(t.reshape({-1}));
  return torch::cat(parts);
}

TEST(StepBenchmark, ReportsMediansAndRatiosOfATinyRun) {
  auto o = tiny("cnn");
  o.variants = {StepVariant::kNonPrivate, StepVariant::kDp,
                StepVariant::kOracle};
  const auto r = benchmark_step(o);
  EXPECT_EQ(r.model, "cnn");
  EXPECT_EQ(r.batch_size, 4);
  EXPECT_EQ(r.steps, 2);
  EXPECT_EQ(r.parameters, 26010);  // Papernot et al.'s CNN, small_models.h
  EXPECT_GE(r.threads, 1);
  EXPECT_EQ(r.device, "cpu");
  ASSERT_TRUE(r.nonprivate_ms && r.dp_ms && r.oracle_ms);
  EXPECT_GT(*r.nonprivate_ms, 0);
  EXPECT_GT(*r.dp_ms, 0);
  EXPECT_GT(*r.oracle_ms, 0);
  ASSERT_TRUE(r.ratio && r.oracle_ratio);
  EXPECT_DOUBLE_EQ(*r.ratio, *r.dp_ms / *r.nonprivate_ms);
  EXPECT_DOUBLE_EQ(*r.oracle_ratio, *r.oracle_ms / *r.nonprivate_ms);
  ASSERT_TRUE(r.nonprivate_gradient_ms && r.nonprivate_update_ms &&
              r.dp_gradient_ms && r.dp_update_ms && r.gradient_ratio);
  EXPECT_GT(*r.dp_gradient_ms, 0);
  EXPECT_GT(*r.dp_update_ms, 0);
  EXPECT_DOUBLE_EQ(*r.gradient_ratio,
                   *r.dp_gradient_ms / *r.nonprivate_gradient_ms);
  EXPECT_FALSE(r.logical_ratio.has_value());  // logical_batch_size = 0
  EXPECT_GT(r.baseline_rss_bytes, 0);
  EXPECT_GE(r.peak_rss_bytes, r.baseline_rss_bytes);
}

TEST(StepBenchmark, LogicalRatioWeighsGradientPhasesAgainstOneUpdate) {
  auto o = tiny("cnn");
  o.logical_batch_size = 3 * o.batch_size;
  const auto r = benchmark_step(o);
  ASSERT_TRUE(r.logical_ratio.has_value());
  const double expected =
      (3 * *r.dp_gradient_ms + *r.dp_update_ms) /
      (3 * *r.nonprivate_gradient_ms + *r.nonprivate_update_ms);
  EXPECT_DOUBLE_EQ(*r.logical_ratio, expected);
}

TEST(StepBenchmark, OneVariantLeavesTheOthersAbsent) {
  auto o = tiny("seq");
  o.variants = {StepVariant::kDp};
  const auto r = benchmark_step(o);
  EXPECT_EQ(r.parameters, 396800);  // sequence_mlp.h
  ASSERT_TRUE(r.dp_ms.has_value());
  EXPECT_GT(*r.dp_ms, 0);
  EXPECT_FALSE(r.nonprivate_ms.has_value());
  EXPECT_FALSE(r.oracle_ms.has_value());
  EXPECT_FALSE(r.ratio.has_value());
}

// The engine's clipped sum (the timed DP path) equals the oracle's, and the
// clipping is active: with a tiny C every example is scaled to norm C, so the
// sum differs from the unclipped one and its norm is at most B·C.
void expect_dp_clip_matches_oracle(const std::string& model) {
  auto o = tiny(model);
  o.max_grad_norm = 1e-3;
  StepRunner runner(o);
  runner.dp_clip();
  const auto engine = flat(grads_of(runner));
  runner.oracle_clip();
  const auto oracle = flat(grads_of(runner));
  runner.nonprivate_backward();
  const auto unclipped = flat(grads_of(runner)) * 4.0;  // mean → sum
  const double scale = oracle.norm().item<double>();
  EXPECT_GT(scale, 0);
  EXPECT_LE(scale, 4 * 1e-3 * (1 + 1e-5));
  EXPECT_LT((engine - oracle).abs().max().item<double>(), 1e-4 * scale)
      << model;
  EXPECT_GT((unclipped - oracle).norm().item<double>(), 10 * scale);
}

TEST(StepRunner, DpClipMatchesMicrobatchOracleOnCnn) {
  expect_dp_clip_matches_oracle("cnn");
}

TEST(StepRunner, DpClipMatchesMicrobatchOracleOnSequenceModel) {
  expect_dp_clip_matches_oracle("seq");
}

// The UNet's rows carry their own σ, noise and label, so the oracle's
// one-row slices compute the same per-example EDM losses as the batch.
TEST(StepRunner, DpClipMatchesMicrobatchOracleOnDiffusionUNet) {
  expect_dp_clip_matches_oracle("unet-small");
}

// After the DP step, .grad = (clipped sum + N(0, σ²C²)) / B. With 26,010
// coordinates the standard deviation of the noise is estimated to ~0.5 %, so
// 3 % tolerance accepts σ·C and rejects 2/3 and 3/2 of it.
TEST(StepRunner, DpStepAddsNoiseOfSigmaTimesClipNormOverBatch) {
  auto o = tiny("cnn");
  o.noise_multiplier = 2.0;
  o.max_grad_norm = 0.5;
  StepRunner runner(o);
  runner.dp_clip();
  const auto clipped = flat(grads_of(runner));
  runner.run(StepVariant::kDp);
  const auto noisy = flat(grads_of(runner));
  const auto noise = noisy * 4.0 - clipped;
  const double std = noise.std().item<double>();
  EXPECT_NEAR(std / (2.0 * 0.5), 1.0, 0.03);
  EXPECT_NEAR(noise.mean().item<double>(), 0.0, 0.05);
}

TEST(StepBenchmark, RejectsBadOptionsNamingThem) {
  auto expect_error = [](StepBenchmarkOptions o, const std::string& what) {
    try {
      validate(o);
      ADD_FAILURE() << "no error for " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos)
          << e.what();
    }
  };
  const std::vector<
      std::pair<std::function<void(StepBenchmarkOptions&)>, std::string>>
      cases = {
          {[](StepBenchmarkOptions& o) { o.batch_size = 0; },
           "batch_size must be >= 1, got 0"},
          {[](StepBenchmarkOptions& o) { o.steps = 0; },
           "steps must be >= 1, got 0"},
          {[](StepBenchmarkOptions& o) { o.warmup_steps = -1; },
           "warmup_steps must be >= 0, got -1"},
          {[](StepBenchmarkOptions& o) { o.seq_len = 0; },
           "seq_len must be >= 1, got 0"},
          {[](StepBenchmarkOptions& o) { o.variants = {}; },
           "variants must name at least one"},
          {[](StepBenchmarkOptions& o) {
             o.variants = {StepVariant::kDp, StepVariant::kDp};
           },
           "variants lists 'dp' twice"},
          {[](StepBenchmarkOptions& o) { o.noise_multiplier = -1; },
           "noise_multiplier must be finite and >= 0, got -1"},
          {[](StepBenchmarkOptions& o) { o.max_grad_norm = 0; },
           "max_grad_norm must be finite and > 0, got 0"},
          {[](StepBenchmarkOptions& o) {
             o.logical_batch_size = o.batch_size + 1;
           },
           "logical_batch_size must be a multiple of batch_size (4), got 5"},
      };
  for (const auto& [change, what] : cases) {
    auto o = tiny("cnn");
    change(o);
    expect_error(o, what);
  }
}

TEST(StepBenchmark, RejectsAnUnknownModel) {
  auto o = tiny("resnet-9000");
  try {
    benchmark_step(o);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("resnet-9000"), std::string::npos)
        << e.what();
  }
}

TEST(StepVariant, ParsesItsNamesAndRejectsOthers) {
  for (auto v :
       {StepVariant::kNonPrivate, StepVariant::kDp, StepVariant::kOracle}) {
    EXPECT_EQ(parse_step_variant(to_string(v)), v);
  }
  EXPECT_EQ(to_string(StepVariant::kNonPrivate), "nonprivate");
  try {
    parse_step_variant("private");
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "step variant must be nonprivate, dp or oracle, got 'private'");
  }
}

TEST(StepBenchmark, ProfileTimesTheEnginesOwnPhasesAndEveryLayerRule) {
  const auto p = profile_step(tiny("cnn"));
  std::vector<std::string> dp_phases;
  for (const auto& ph : p.phases) {
    EXPECT_GE(ph.ms, 0.0) << ph.name;
    if (ph.variant == "dp") dp_phases.push_back(ph.name);
  }
  const std::vector<std::string> expected = {
      "forward (recorded)",
      "backward to layer outputs",
      "norms (rules), during the backward",
      "norms (rules)",
      "clip factors",
      "weighted sums",
      "accumulate into .grad",
      "noise",
      "optimizer"};
  EXPECT_EQ(dp_phases, expected);
  // Papernot et al.'s CNN: two convolutions and two linear layers.
  ASSERT_EQ(p.layers.size(), 4U);
  for (const auto& l : p.layers) {
    EXPECT_FALSE(l.path.empty());
    EXPECT_NE(l.path, "?");
    EXPECT_GE(l.norms_ms, 0.0) << l.path;
    EXPECT_NE(l.output_shape, "-") << l.path;
  }
}

}  // namespace
}  // namespace dptrain::bench
