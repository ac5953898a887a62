// Validation of wrapped models and every error path of the engine and the
// DP layers, with their messages.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/dp/clipping/validation.h"
#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/embedding.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/layers/normalization.h"

namespace dp = dptrain::dp;

namespace {

template <typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

struct Net : torch::nn::Module {
  Net() {
    features = register_module(
        "features", torch::nn::Sequential(torch::nn::Conv2d(1, 2, 3),
                                          torch::nn::BatchNorm2d(2)));
    head = register_module("head", dp::Linear(2, 2));
    frozen = register_module("frozen", torch::nn::Linear(2, 2));
    for (auto& p : frozen->parameters()) p.set_requires_grad(false);
  }
  torch::nn::Sequential features{nullptr};
  dp::Linear head{nullptr};
  torch::nn::Linear frozen{nullptr};
};

TEST(Validation, ListsEveryOffendingModuleWithReason) {
  auto net = std::make_shared<Net>();
  try {
    dp::GradientEngine engine(net, dp::ClippingOptions(1.0));
    FAIL() << "expected UnsupportedLayerError";
  } catch (const dp::UnsupportedLayerError& e) {
    const std::string what = e.what();
    ASSERT_EQ(e.problems().size(), 2u) << what;
    EXPECT_NE(what.find("cannot handle 2 module(s)"), std::string::npos)
        << what;
    EXPECT_NE(
        what.find("features.0 (torch::nn::Conv2dImpl): trainable parameters "
                  "[weight, bias] have no per-example gradient rule"),
        std::string::npos)
        << what;
    EXPECT_NE(
        what.find("features.1 (torch::nn::BatchNorm2dImpl): BatchNorm mixes "
                  "the examples of a batch"),
        std::string::npos)
        << what;
    EXPECT_EQ(what.find("head"), std::string::npos) << what;
    EXPECT_EQ(what.find("frozen"), std::string::npos) << what;
  }
}

TEST(Validation, FrozenBatchNormIsStillRefused) {
  auto bn = torch::nn::BatchNorm1d(3);
  for (auto& p : bn->parameters()) p.set_requires_grad(false);
  auto problems = dp::find_unsupported_layers(*bn, *dp::builtin_rules());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("<root> (torch::nn::BatchNorm1dImpl): BatchNorm"),
            std::string::npos)
      << problems[0];
}

TEST(Validation, AcceptsDpLayersAndFrozenTorchLayers) {
  auto seq = torch::nn::Sequential(dp::Linear(2, 3), torch::nn::Linear(3, 3),
                                   dp::GroupNorm(1, 3));
  for (auto& p : seq[1]->parameters()) p.set_requires_grad(false);
  EXPECT_TRUE(dp::find_unsupported_layers(*seq, *dp::builtin_rules()).empty());
}

TEST(GradientEngine, RejectsLossThatIsNot1d) {
  auto lin = dp::Linear(2, 1);
  dp::GradientEngine engine(lin, dp::ClippingOptions(1.0));
  auto recording = engine.record();
  auto y = lin(torch::randn({3, 2}));
  EXPECT_EQ(message_of([&] { engine.clip_and_accumulate(y); }),
            "per_example_loss must be a 1-d tensor [B*K], got [3, 1]");
}

TEST(GradientEngine, RejectsGroupSizeThatDoesNotDivideRows) {
  auto lin = dp::Linear(2, 1);
  dp::GradientEngine engine(lin, dp::ClippingOptions(1.0));
  auto recording = engine.record();
  auto y = lin(torch::randn({3, 2})).sum(1);
  EXPECT_EQ(
      message_of([&] { engine.clip_and_accumulate(y, 2); }),
      "group_size must be >= 1 and divide the number of loss rows (3), got 2");
  EXPECT_EQ(
      message_of([&] { engine.clip_and_accumulate(y, 0); }),
      "group_size must be >= 1 and divide the number of loss rows (3), got 0");
}

TEST(GradientEngine, RejectsLossWithoutRecording) {
  auto lin = dp::Linear(2, 1);
  dp::GradientEngine engine(lin, dp::ClippingOptions(1.0));
  auto y = lin(torch::randn({3, 2})).sum(1);
  EXPECT_NE(message_of([&] {
              engine.clip_and_accumulate(y);
            }).find("no DP-layer calls were recorded for this loss"),
            std::string::npos);
}

TEST(GradientEngine, RejectsOutputModifiedInPlace) {
  auto seq = torch::nn::Sequential(dp::Linear(2, 2));
  dp::GradientEngine engine(seq.ptr(), dp::ClippingOptions(1.0));
  auto recording = engine.record();
  auto y = seq->forward(torch::randn({3, 2}));
  y.mul_(2.0);
  EXPECT_EQ(message_of([&] { engine.clip_and_accumulate(y.sum(1)); }),
            "the output of layer '0' was modified in place after the layer ran "
            "(e.g. an in-place activation); use out-of-place operations after "
            "DP layers");
}

TEST(GradientEngine, RejectsParameterUnfrozenAfterConstruction) {
  auto seq = torch::nn::Sequential(dp::Linear(2, 2), dp::Linear(2, 1));
  for (auto& p : seq[0]->parameters()) p.set_requires_grad(false);
  dp::GradientEngine engine(seq.ptr(), dp::ClippingOptions(1.0));
  seq[0]->parameters()[0].set_requires_grad(true);
  auto recording = engine.record();
  auto y = seq->forward(torch::randn({3, 2})).sum(1);
  EXPECT_EQ(
      message_of([&] { engine.clip_and_accumulate(y); }),
      "parameter '0.weight' became trainable after the GradientEngine was "
      "built (or no rule covers it); build a new engine");
}

TEST(GradientEngine, LayersOutsideRecordingRecordNothing) {
  auto lin = dp::Linear(2, 2);
  EXPECT_FALSE(dp::detail::is_recording());
  dp::GradientEngine engine(lin, dp::ClippingOptions(1.0));
  {
    auto recording = engine.record();
    EXPECT_TRUE(dp::detail::is_recording());
  }
  EXPECT_FALSE(dp::detail::is_recording());
}

TEST(ClippingOptions, RejectsNonPositiveMaxGradNorm) {
  EXPECT_EQ(message_of([] { dp::ClippingOptions o(-1.0); }),
            "max_grad_norm must be finite and > 0, got -1.000000");
  EXPECT_EQ(message_of([] { dp::ClippingOptions o(0.0); }),
            "max_grad_norm must be finite and > 0, got 0.000000");
}

TEST(Oracle, RejectsNegativeExampleCount) {
  auto lin = dp::Linear(2, 1);
  EXPECT_EQ(message_of([&] {
              dp::microbatch_clip_and_accumulate(
                  *lin, -1, [](int64_t) { return torch::zeros({1}); },
                  dp::ClippingOptions(1.0));
            }),
            "num_examples must be >= 0, got -1");
}

TEST(Layers, RejectBadOptions) {
  EXPECT_EQ(
      message_of([] {
        dp::Embedding(dp::EmbeddingOptions(4, 2).scale_grad_by_freq(true));
      }),
      "Embedding: scale_grad_by_freq=true mixes the examples of a batch "
      "and is not supported under DP");
  // max_norm would renormalise, without noise, the rows a batch looked up.
  EXPECT_EQ(
      message_of(
          [] { dp::Embedding(dp::EmbeddingOptions(4, 2).max_norm(1.0)); }),
      "Embedding: max_norm is not supported under DP (it renormalises the "
      "rows a private batch touched, without noise)");
  EXPECT_EQ(message_of(
                [] { dp::Embedding(dp::EmbeddingOptions(4, 2).sparse(true)); }),
            "Embedding: sparse=true is not supported (gradients are dense)");
  EXPECT_EQ(message_of([] {
              dp::Embedding(dp::EmbeddingOptions(4, 2).padding_idx(4));
            }),
            "Embedding: padding_idx must be in [-4, 4), got 4");
  EXPECT_EQ(
      message_of([] { dp::Conv2d(dp::Conv2dOptions(3, 4, 3).groups(2)); }),
      "Conv2d: groups must be > 0 and divide in_channels (3) and "
      "out_channels (4), got 2");
  EXPECT_EQ(
      message_of([] { dp::Conv1d(dp::Conv1dOptions(2, 2, 3).stride(0)); }),
      "Conv1d: stride must be > 0, got [0]");
  EXPECT_EQ(message_of([] { dp::Linear(0, 2); }),
            "Linear: in_features and out_features must be > 0, got 0 and 2");
  EXPECT_EQ(
      message_of([] { dp::GroupNorm(3, 4); }),
      "GroupNorm: num_groups must be > 0 and divide num_channels (4), got 3");
  EXPECT_EQ(message_of([] { dp::RMSNorm(dp::RMSNormOptions(4).eps(0.0)); }),
            "RMSNorm: eps must be > 0, got 0.000000");
  EXPECT_EQ(
      message_of([] {
        dp::Linear(2, 3)->tie_weight(torch::zeros({2, 2}));
      }),
      "Linear::tie_weight: shared weight must have shape [3, 2], got [2, 2]");
}

TEST(Layers, SameConvolutionKeepsLengthAndMatchesTorchForStride1) {
  torch::manual_seed(5);
  auto conv = dp::Conv2d(dp::Conv2dOptions(1, 1, 4).padding(torch::kSame));
  auto ref = torch::nn::Conv2d(
      torch::nn::Conv2dOptions(1, 1, 4).padding(torch::kSame));
  {
    torch::NoGradGuard g;
    ref->weight.copy_(conv->weight);
    ref->bias.copy_(conv->bias);
  }
  auto x = torch::randn({2, 1, 7, 7});
  EXPECT_TRUE(torch::allclose(conv(x), ref(x), 1e-5, 1e-6));
  auto strided =
      dp::Conv2d(dp::Conv2dOptions(1, 1, 3).stride(2).padding(torch::kSame));
  EXPECT_EQ(strided(x).sizes(), (std::vector<int64_t>{2, 1, 4, 4}));
}

}  // namespace
