// dp::EngineObserver sees the engine's phases in order and every rule call,
// and observing changes nothing that is computed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/layers/linear.h"

namespace dp = dptrain::dp;

namespace {

struct TwoLayers : torch::nn::Module {
  TwoLayers() {
    a = register_module("a", dp::Linear(3, 4));
    b = register_module("b", dp::Linear(4, 2));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return b->forward(torch::tanh(a->forward(x)));
  }
  dp::Linear a{nullptr}, b{nullptr};
};

class Recorder final : public dp::EngineObserver {
 public:
  void phase_begin(dp::EnginePhase p) override {
    events.push_back(std::string("begin ") + dp::to_string(p));
  }
  void phase_end(dp::EnginePhase p) override {
    events.push_back(std::string("end ") + dp::to_string(p));
  }
  void layer_begin(dp::EnginePhase p, const dp::LayerCall&) override {
    events.push_back(std::string("layer ") + dp::to_string(p));
  }
  void layer_end(dp::EnginePhase, const dp::LayerCall&, bool) override {}
  std::vector<std::string> events;
};

std::vector<torch::Tensor> clipped_grads(dp::EngineObserver* observer) {
  torch::manual_seed(3);
  auto model = std::make_shared<TwoLayers>();
  model->to(torch::kDouble);
  dp::GradientEngine engine(model, dp::ClippingOptions(0.1));
  engine.set_observer(observer);
  const auto x = torch::randn({5, 3}, torch::kDouble);
  const auto y = torch::randn({5, 2}, torch::kDouble);
  {
    auto recording = engine.record();
    const auto loss = (model->forward(x) - y).pow(2).sum(1);
    engine.clip_and_accumulate(loss);
  }
  std::vector<torch::Tensor> grads;
  for (const auto& p : engine.parameters()) grads.push_back(p.grad().clone());
  return grads;
}

TEST(EngineObserver, SeesEveryPhaseInOrderAndEachRuleCall) {
  Recorder recorder;
  clipped_grads(&recorder);
  // The phases, each begun and ended once, in order; a layer's norms taken
  // inside the backward (as its gradient arrives) or the norms phase (one
  // per layer), its weighted sum inside weighted sums (one per layer whose
  // sum the rule computes; none where per-example gradients were kept).
  std::vector<std::string> phases;
  int norms_calls = 0, sums_calls = 0;
  std::string open;
  for (const auto& e : recorder.events) {
    if (e.rfind("begin ", 0) == 0) {
      EXPECT_EQ(open, "") << e;
      open = e.substr(6);
      phases.push_back(open);
    } else if (e.rfind("end ", 0) == 0) {
      EXPECT_EQ(open, e.substr(4));
      open.clear();
    } else if (e == "layer norms (rules)") {
      EXPECT_TRUE(open == "backward to layer outputs" ||
                  open == "norms (rules)")
          << open;
      ++norms_calls;
    } else {
      EXPECT_EQ("layer " + open, e);
      EXPECT_EQ(open, "weighted sums");
      ++sums_calls;
    }
  }
  EXPECT_EQ(open, "");
  const std::vector<std::string> expected = {
      "backward to layer outputs", "norms (rules)", "clip factors",
      "weighted sums", "accumulate into .grad"};
  EXPECT_EQ(phases, expected);
  EXPECT_EQ(norms_calls, 2);
  EXPECT_LE(sums_calls, 2);
}

TEST(EngineObserver, ObservingChangesNoGradient) {
  Recorder recorder;
  const auto observed = clipped_grads(&recorder);
  const auto plain = clipped_grads(nullptr);
  ASSERT_EQ(observed.size(), plain.size());
  for (std::size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(torch::equal(observed[i], plain[i])) << "parameter " << i;
  }
}

}  // namespace
