// Every model at tiny width against the microbatch oracle in float64: the
// engine's per-example norms and clipped sums must match one-example-at-a-
// time autograd, flat and per-layer, with augmentation multiplicity K = 2,
// and with frozen layers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/models/feature_cnn.h"
#include "dptrain/models/fine_tuning.h"
#include "dptrain/models/nf_resnet.h"
#include "dptrain/models/nfnet.h"
#include "dptrain/models/small_models.h"
#include "dptrain/models/wide_resnet.h"

namespace dp = dptrain::dp;
namespace m = dptrain::models;

namespace {

struct Case {
  std::string name;
  std::function<std::shared_ptr<m::ImageClassifier>()> make;
  int64_t channels, side;
};

std::vector<Case> cases() {
  return {
      {"TanhCnn",
       [] {
         return std::make_shared<m::TanhCnnImpl>(
             m::TanhCnnOptions().num_classes(4));
       },
       1, 28},
      {"FeatureCnn",
       [] {
         return std::make_shared<m::FeatureCnnImpl>(
             m::FeatureCnnOptions().width(3).num_classes(3));
       },
       1, 8},
      {"Mlp",
       [] {
         return std::make_shared<m::MlpImpl>(
             m::MlpOptions().image_size(6).hidden({7, 5}).num_classes(3));
       },
       1, 6},
      {"WideResNet",
       [] {
         return std::make_shared<m::WideResNetImpl>(m::WideResNetOptions(10, 1)
                                                        .stem_channels(4)
                                                        .norm_groups(2)
                                                        .num_classes(3));
       },
       3, 7},
      {"NFResNet",
       [] {
         // Bottleneck widths ≥ 3: with fan_in 2 a standardised weight is
         // ±gain/√2 whatever W is, so ∂/∂W is rounding noise on both sides.
         return std::make_shared<m::NFResNetImpl>(m::NFResNetOptions()
                                                      .depths({1, 2, 1, 1})
                                                      .widths({12, 12, 16, 16})
                                                      .stem_channels(4)
                                                      .use_se(true)
                                                      .num_classes(3));
       },
       3, 9},
      {"NFNet",
       [] {
         return std::make_shared<m::NFNetImpl>(m::NFNetOptions()
                                                   .depths({1, 2, 1, 1})
                                                   .widths({8, 8, 16, 16})
                                                   .stem_channels({2, 4, 4})
                                                   .group_width(2)
                                                   .num_classes(3));
       },
       3, 9},
  };
}

torch::Tensor row_loss(const torch::Tensor& logits,
                       const torch::Tensor& labels) {
  namespace F = torch::nn::functional;
  return F::cross_entropy(logits, labels,
                          F::CrossEntropyFuncOptions().reduction(torch::kNone));
}

std::vector<torch::Tensor> take_grads(torch::nn::Module& net) {
  std::vector<torch::Tensor> g;
  for (auto& p : net.parameters()) {
    g.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    p.mutable_grad() = torch::Tensor();
  }
  return g;
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const double scale = std::max(b.norm().item<double>(), 1e-300);
  const double diff = (a - b).norm().item<double>();
  return diff == 0.0 ? 0.0 : diff / scale;
}

void check_against_oracle(const Case& c, const std::string& freeze_pattern) {
  torch::manual_seed(5);
  auto net = c.make();
  net->to(torch::kDouble);
  {
    // Non-trivial gains, biases and skip gains (SkipInit starts at 0, which
    // would hide the residual branches).
    torch::NoGradGuard g;
    for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.3);
  }
  if (!freeze_pattern.empty()) m::set_trainable(*net, freeze_pattern);
  const int64_t batch = 3;
  for (int64_t k : {1, 2}) {
    auto x =
        torch::randn({batch * k, c.channels, c.side, c.side}, torch::kDouble);
    auto y = torch::randint(net->num_classes(), {batch * k}, torch::kLong);
    torch::Tensor norms;
    {
      auto probe = dp::microbatch_clip_and_accumulate(
          *net, batch,
          [&](int64_t i) {
            return row_loss(net->forward(x.slice(0, i * k, (i + 1) * k)),
                            y.slice(0, i * k, (i + 1) * k));
          },
          dp::ClippingOptions(1e30).diagnostics(true));
      norms = probe.diagnostics->norms;
      take_grads(*net);
    }
    const double clip = std::get<0>(norms.median(0)).item<double>();
    for (auto mode : {dp::ClipMode::kFlat, dp::ClipMode::kPerLayer}) {
      const auto opts = dp::ClippingOptions(clip).mode(mode).diagnostics(true);
      auto want = dp::microbatch_clip_and_accumulate(
          *net, batch,
          [&](int64_t i) {
            return row_loss(net->forward(x.slice(0, i * k, (i + 1) * k)),
                            y.slice(0, i * k, (i + 1) * k));
          },
          opts);
      const auto want_grads = take_grads(*net);
      dp::GradientEngine engine(
          std::static_pointer_cast<torch::nn::Module>(net), opts);
      dp::ClipResult got;
      {
        auto recording = engine.record();
        got = engine.clip_and_accumulate(row_loss(net->forward(x), y), k);
      }
      const auto got_grads = take_grads(*net);
      const std::string where =
          c.name + " K=" + std::to_string(k) +
          (mode == dp::ClipMode::kFlat ? " flat" : " per-layer") +
          (freeze_pattern.empty() ? "" : " frozen");
      ASSERT_EQ(got.diagnostics->norms.sizes(), want.diagnostics->norms.sizes())
          << where;
      EXPECT_LE(rel_diff(got.diagnostics->norms, want.diagnostics->norms), 1e-9)
          << where;
      ASSERT_EQ(got_grads.size(), want_grads.size());
      const auto params = net->named_parameters();
      for (size_t i = 0; i < got_grads.size(); ++i) {
        const auto& name = params[i].key();
        if (!params[i].value().requires_grad()) {
          EXPECT_FALSE(got_grads[i].defined()) << where << " " << name;
          continue;
        }
        ASSERT_TRUE(got_grads[i].defined()) << where << " " << name;
        ASSERT_TRUE(want_grads[i].defined()) << where << " " << name;
        EXPECT_LE(rel_diff(got_grads[i], want_grads[i]), 1e-9)
            << where << " " << name;
      }
    }
  }
}

class ModelGradients : public ::testing::TestWithParam<Case> {};

TEST_P(ModelGradients, MatchMicrobatchOracle) {
  check_against_oracle(GetParam(), "");
}

TEST_P(ModelGradients, MatchMicrobatchOracleWithFrozenLayers) {
  // Train the classifier and the last stage / hidden layer only.
  check_against_oracle(
      GetParam(),
      "^classifier\\.|^blocks\\.4\\.|^stages\\.2\\.|^fc1\\.|^hidden\\.1\\.");
}

INSTANTIATE_TEST_SUITE_P(Models, ModelGradients, ::testing::ValuesIn(cases()),
                         [](const auto& param_info) {
                           return param_info.param.name;
                         });

}  // namespace
