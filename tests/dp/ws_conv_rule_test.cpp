// WSConv2d's norm shortcut (ws_conv_rule.cpp, ws_norms): per-example norms from
// three reductions over dŴ instead of the standardisation backward. The
// harness (engine_oracle_test.cpp) covers ordinary weights; these cases hit
// what it does not: per-channel gains ≠ 1 (and one zero), an output channel
// whose weight is constant (fan-in variance 0 < eps: the projection term is
// inactive), and frozen weight or gain, on both routes (ghost and grouped).
// Engine vs oracle in float64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/dp/layers/conv.h"

namespace dp = dptrain::dp;

namespace {

struct WsNet : torch::nn::Module {
  WsNet() {
    conv = register_module(
        "conv", dp::WSConv2d(dp::WSConv2dOptions(3, 4, 3).padding(1)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return conv(x); }
  dp::WSConv2d conv{nullptr};
};

torch::Tensor ws_row_loss(const torch::Tensor& y, const torch::Tensor& r) {
  return (r * y + 0.5 * y * y).flatten(1).sum(1);
}

void clear(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.mutable_grad() = torch::Tensor();
}

// size 6: the ghost route (pixel Gram); size 16: grouped with kept dŴ.
// dtype kFloat: the engine runs in float32 (the fused CPU kernels' float
// path) against the oracle in float64 on the same values, to 2e-5.
void check(bool freeze_weight, bool freeze_gain, int64_t size,
           const std::string& label, torch::Dtype dtype = torch::kDouble) {
  torch::manual_seed(5);
  auto net = std::make_shared<WsNet>();
  net->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    net->conv->gain.copy_(
        torch::tensor({0.5, 2.0, 0.0, 1.5}, torch::kDouble).view({4, 1, 1, 1}));
    net->conv->weight[1].fill_(0.3);  // constant: variance 0, inactive term
    net->conv->bias.normal_();
  }
  net->conv->weight.set_requires_grad(!freeze_weight);
  net->conv->gain.set_requires_grad(!freeze_gain);
  const int64_t batch = 5;
  auto x = torch::randn({batch, 3, size, size}, torch::kDouble);
  auto r = torch::randn({batch, 4, size, size}, torch::kDouble);
  auto opts = dp::ClippingOptions(0.7).diagnostics(true);

  clear(*net);
  auto oracle = dp::microbatch_clip_and_accumulate(
      *net, batch,
      [&](int64_t i) {
        return ws_row_loss(net->forward(x.slice(0, i, i + 1)),
                           r.slice(0, i, i + 1));
      },
      opts);
  std::vector<torch::Tensor> expected;
  for (const auto& p : net->parameters()) {
    if (p.requires_grad()) expected.push_back(p.grad().clone());
  }

  clear(*net);
  net->to(dtype);
  const double tolerance = dtype == torch::kDouble ? 1e-9 : 2e-5;
  dp::GradientEngine engine(net, opts);
  dp::ClipResult result;
  {
    auto recording = engine.record();
    result = engine.clip_and_accumulate(
        ws_row_loss(net->forward(x.to(dtype)), r.to(dtype)));
  }
  const auto& want = oracle.diagnostics->norms;
  const auto got = result.diagnostics->norms.to(torch::kDouble);
  EXPECT_LT((got - want).abs().max().item<double>(),
            tolerance * want.abs().max().item<double>())
      << label << "\n"
      << got << "\n"
      << want;
  // C is below some norms, so the sums test the clip factors too.
  EXPECT_GT(oracle.diagnostics->fraction_clipped, 0.0) << label;
  size_t j = 0;
  for (const auto& p : net->parameters()) {
    if (!p.requires_grad()) continue;
    const double scale = expected[j].norm().item<double>();
    EXPECT_LE((p.grad().to(torch::kDouble) - expected[j]).norm().item<double>(),
              tolerance * scale)
        << label << " parameter " << j;
    ++j;
  }
}

TEST(WSConv2dRule, MatchesOracleWithUnequalGainsAndAConstantChannel) {
  check(false, false, 6, "all trainable, ghost");
  check(false, false, 16, "all trainable, grouped");
}

TEST(WSConv2dRule, Float32MatchesFloat64Oracle) {
  check(false, false, 6, "float32, ghost", torch::kFloat);
  check(false, false, 16, "float32, grouped", torch::kFloat);
  check(false, true, 16, "float32, gain frozen, grouped", torch::kFloat);
  check(true, false, 16, "float32, weight frozen, grouped", torch::kFloat);
}

TEST(WSConv2dRule, MatchesOracleWithFrozenGain) {
  check(false, true, 6, "gain frozen, ghost");
  check(false, true, 16, "gain frozen, grouped");
}

TEST(WSConv2dRule, MatchesOracleWithFrozenWeight) {
  check(true, false, 6, "weight frozen, ghost");
  check(true, false, 16, "weight frozen, grouped");
}

}  // namespace
