// The engine-vs-oracle harness: one table of cases, each a small model built
// from DP layers; every case is checked against the microbatch oracle in
// float64 for B ∈ {0, 1, 3, 8}, K ∈ {1, 2}, flat and per-layer clipping:
// per-example norms and clipped sums to 1e-9 relative.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/elementwise.h"
#include "dptrain/dp/layers/embedding.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/layers/normalization.h"

namespace dp = dptrain::dp;

namespace {

// A model whose forward is a lambda over registered submodules.
struct LambdaNet : torch::nn::Module {
  std::function<torch::Tensor(const torch::Tensor&)> body;
  torch::Tensor forward(const torch::Tensor& x) { return body(x); }
};

struct Case {
  std::string name;
  // Builds the model (float32; the harness converts to float64) and its body.
  std::function<std::shared_ptr<LambdaNet>()> make;
  // Input of `rows` rows.
  std::function<torch::Tensor(int64_t rows)> input;
};

torch::Tensor randn_rows(int64_t rows, std::vector<int64_t> shape) {
  shape.insert(shape.begin(), rows);
  return torch::randn(shape, torch::kDouble);
}
torch::Tensor indices(int64_t rows, int64_t t, int64_t vocab) {
  return torch::randint(vocab, {rows, t}, torch::kLong);
}

template <typename Holder>
Holder reg(LambdaNet& net, const std::string& name, Holder holder) {
  net.register_module(name, holder);
  return holder;
}

template <typename Holder>
std::shared_ptr<LambdaNet> single(Holder layer) {
  auto net = std::make_shared<LambdaNet>();
  net->register_module("layer", layer);
  net->body = [layer](const torch::Tensor& x) mutable { return layer(x); };
  return net;
}

std::shared_ptr<LambdaNet> fashion_cnn() {
  auto net = std::make_shared<LambdaNet>();
  auto seq = reg(
      *net, "features",
      torch::nn::Sequential(
          dp::Conv2d(dp::Conv2dOptions(1, 16, 8).stride(2).padding(2)),
          torch::nn::Tanh(),
          torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(1)),
          dp::Conv2d(dp::Conv2dOptions(16, 32, 4).stride(2)), torch::nn::Tanh(),
          torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(1)),
          torch::nn::Flatten(), dp::Linear(512, 32), torch::nn::Tanh(),
          dp::Linear(32, 10)));
  net->body = [seq](const torch::Tensor& x) mutable { return seq->forward(x); };
  return net;
}

std::shared_ptr<LambdaNet> tiny_wrn() {
  auto net = std::make_shared<LambdaNet>();
  auto stem =
      reg(*net, "stem", dp::WSConv2d(dp::WSConv2dOptions(3, 8, 3).padding(1)));
  auto gn1 = reg(*net, "gn1", dp::GroupNorm(2, 8));
  auto conv = reg(*net, "conv",
                  dp::WSConv2d(dp::WSConv2dOptions(8, 8, 3).stride(2).padding(
                      torch::kSame)));
  auto shortcut =
      reg(*net, "shortcut",
          dp::WSConv2d(dp::WSConv2dOptions(3, 8, 1).stride(2).bias(false)));
  auto skip =
      reg(*net, "skip_gain", dp::Scale(dp::ElementwiseOptions({}).init(0.5)));
  auto gn2 = reg(*net, "gn2", dp::GroupNorm(4, 8));
  auto head = reg(*net, "head", dp::Linear(8, 3));
  net->body = [=](const torch::Tensor& x) mutable {
    auto h = torch::relu(gn1(stem(x)));
    auto y = skip(conv(h)) + shortcut(x);
    y = torch::relu(gn2(y)).mean({2, 3});
    return head(y);
  };
  return net;
}

std::shared_ptr<LambdaNet> tiny_transformer(bool tied) {
  auto net = std::make_shared<LambdaNet>();
  auto emb = reg(*net, "embed", dp::Embedding(11, 8));
  auto ln = reg(*net, "ln", dp::LayerNorm(std::vector<int64_t>{8}));
  auto up = reg(*net, "up", dp::Linear(8, 16));
  auto down = reg(*net, "down", dp::Linear(16, 8));
  auto rms = reg(*net, "rms", dp::RMSNorm(8));
  auto mix = reg(
      *net, "mix",
      dp::Conv1d(dp::Conv1dOptions(8, 8, 3).groups(8).padding(dp::kCausal)));
  auto gate = reg(*net, "gate", dp::Scale(std::vector<int64_t>{8}));
  auto shift = reg(*net, "shift", dp::Bias(std::vector<int64_t>{8}));
  auto head =
      reg(*net, "head", dp::Linear(dp::LinearOptions(8, 11).bias(false)));
  if (tied) head->tie_weight(emb->weight);
  net->body = [=](const torch::Tensor& idx) mutable {
    auto h = emb(idx);  // [N, T, 8]
    h = h + down(torch::gelu(up(ln(h))));
    auto m = mix(rms(h).transpose(1, 2)).transpose(1, 2);
    h = h + shift(gate(m));
    return head(h);  // [N, T, 11]
  };
  return net;
}

std::vector<Case> cases() {
  using V = std::vector<int64_t>;
  std::vector<Case> c;
  c.push_back({"Linear", [] { return single(dp::Linear(5, 4)); },
               [](int64_t n) { return randn_rows(n, {5}); }});
  c.push_back(
      {"LinearNoBias",
       [] { return single(dp::Linear(dp::LinearOptions(5, 4).bias(false))); },
       [](int64_t n) { return randn_rows(n, {5}); }});
  c.push_back({"LinearSequenceGhost", [] { return single(dp::Linear(6, 7)); },
               [](int64_t n) {
                 return randn_rows(n, {3, 6});
               }});
  c.push_back({"LinearSequenceMaterialised",
               [] { return single(dp::Linear(3, 2)); },
               [](int64_t n) {
                 return randn_rows(n, {4, 3});
               }});
  c.push_back({"LinearTwoSequenceDims", [] { return single(dp::Linear(5, 3)); },
               [](int64_t n) {
                 return randn_rows(n, {2, 2, 5});
               }});
  c.push_back({"Conv2d", [] { return single(dp::Conv2d(2, 3, 3)); },
               [](int64_t n) {
                 return randn_rows(n, {2, 6, 6});
               }});
  c.push_back({"Conv2dStridePadDilation",
               [] {
                 return single(dp::Conv2d(dp::Conv2dOptions(2, 3, {3, 2})
                                              .stride({2, 1})
                                              .padding({1, 2})
                                              .dilation({2, 1})));
               },
               [](int64_t n) {
                 return randn_rows(n, {2, 7, 6});
               }});
  c.push_back(
      {"Conv2dGroups",
       [] { return single(dp::Conv2d(dp::Conv2dOptions(4, 6, 3).groups(2))); },
       [](int64_t n) {
         return randn_rows(n, {4, 5, 5});
       }});
  c.push_back(
      {"Conv2dSameStride2Asymmetric",
       [] {
         return single(dp::Conv2d(
             dp::Conv2dOptions(2, 3, 4).stride(2).padding(torch::kSame)));
       },
       [](int64_t n) {
         return randn_rows(n, {2, 7, 7});
       }});
  c.push_back({"Conv2dGhost",
               [] {
                 return single(dp::Conv2d(
                     dp::Conv2dOptions(8, 16, 3).stride(2).padding(1)));
               },
               [](int64_t n) {
                 return randn_rows(n, {8, 4, 4});
               }});
  c.push_back({"Conv2dNoBias",
               [] {
                 return single(
                     dp::Conv2d(dp::Conv2dOptions(2, 2, 2).bias(false)));
               },
               [](int64_t n) {
                 return randn_rows(n, {2, 4, 4});
               }});
  c.push_back({"Conv1d",
               [] {
                 return single(dp::Conv1d(
                     dp::Conv1dOptions(3, 4, 3).stride(2).padding(1)));
               },
               [](int64_t n) {
                 return randn_rows(n, {3, 9});
               }});
  c.push_back({"Conv1dCausalDepthwise",
               [] {
                 return single(dp::Conv1d(
                     dp::Conv1dOptions(4, 4, 3).groups(4).dilation(2).padding(
                         dp::kCausal)));
               },
               [](int64_t n) {
                 return randn_rows(n, {4, 8});
               }});
  c.push_back({"Conv1dGhost",
               [] {
                 return single(
                     dp::Conv1d(dp::Conv1dOptions(16, 16, 3).padding(1)));
               },
               [](int64_t n) {
                 return randn_rows(n, {16, 2});
               }});
  c.push_back({"WSConv2d",
               [] {
                 return single(
                     dp::WSConv2d(dp::WSConv2dOptions(2, 3, 3).padding(1)));
               },
               [](int64_t n) {
                 return randn_rows(n, {2, 5, 5});
               }});
  c.push_back({"WSConv2dSameStride2NoBias",
               [] {
                 return single(dp::WSConv2d(dp::WSConv2dOptions(2, 4, 2)
                                                .stride(2)
                                                .padding(torch::kSame)
                                                .bias(false)));
               },
               [](int64_t n) {
                 return randn_rows(n, {2, 5, 5});
               }});
  // WSConv2d routes (conv_cost_model.h): ghost (pixel Gram) on small
  // maps with many channels, incl. explicit/asymmetric padding, stride and
  // dilation; grouped with kept dŴ on large maps with few channels.
  c.push_back({"WSConv2dGhost",
               [] {
                 return single(
                     dp::WSConv2d(dp::WSConv2dOptions(8, 16, 3).padding(1)));
               },
               [](int64_t n) {
                 return randn_rows(n, {8, 4, 4});
               }});
  c.push_back(
      {"WSConv2dGhostStride2Dilation2",
       [] {
         return single(dp::WSConv2d(
             dp::WSConv2dOptions(8, 16, 3).stride(2).dilation(2).padding(2)));
       },
       [](int64_t n) {
         return randn_rows(n, {8, 7, 7});
       }});
  c.push_back(
      {"WSConv2dGhostSameStride2Asymmetric",
       [] {
         return single(dp::WSConv2d(
             dp::WSConv2dOptions(8, 16, 3).stride(2).padding(torch::kSame)));
       },
       [](int64_t n) {
         return randn_rows(n, {8, 6, 6});
       }});
  // 1×1 kernels (pointwise): a bmm per example on small maps, one
  // convolution_backward per example from 100 positions per row.
  c.push_back(
      {"WSConv2dPointwise",
       [] { return single(dp::WSConv2d(dp::WSConv2dOptions(8, 16, 1))); },
       [](int64_t n) {
         return randn_rows(n, {8, 5, 5});
       }});
  c.push_back({"WSConv2dPointwiseStride2SameNoBias",
               [] {
                 return single(dp::WSConv2d(dp::WSConv2dOptions(8, 16, 1)
                                                .stride(2)
                                                .padding(torch::kSame)
                                                .bias(false)));
               },
               [](int64_t n) {
                 return randn_rows(n, {8, 7, 7});
               }});
  c.push_back({"WSConv2dPointwiseLargeMap",
               [] {
                 return single(
                     dp::WSConv2d(dp::WSConv2dOptions(8, 16, 1).stride(2)));
               },
               [](int64_t n) {
                 return randn_rows(n, {8, 21, 21});
               }});
  c.push_back({"Conv2dPointwise",
               [] { return single(dp::Conv2d(dp::Conv2dOptions(8, 4, 1))); },
               [](int64_t n) {
                 return randn_rows(n, {8, 5, 5});
               }});
  c.push_back({"Conv2dPointwiseLargeMap",
               [] { return single(dp::Conv2d(dp::Conv2dOptions(8, 4, 1))); },
               [](int64_t n) {
                 return randn_rows(n, {8, 11, 11});
               }});
  c.push_back({"WSConv2dGroupedKept",
               [] {
                 return single(
                     dp::WSConv2d(dp::WSConv2dOptions(2, 3, 3).padding(1)));
               },
               [](int64_t n) {
                 return randn_rows(n, {2, 16, 16});
               }});
  c.push_back({"GroupNorm",
               [] {
                 auto net = single(dp::GroupNorm(2, 4));
                 torch::NoGradGuard g;
                 for (auto& p : net->parameters()) p.uniform_(-1, 1);
                 return net;
               },
               [](int64_t n) {
                 return randn_rows(n, {4, 3, 3});
               }});
  c.push_back({"LayerNorm",
               [] {
                 auto net = single(dp::LayerNorm(V{2, 3}));
                 torch::NoGradGuard g;
                 for (auto& p : net->parameters()) p.uniform_(-1, 1);
                 return net;
               },
               [](int64_t n) {
                 return randn_rows(n, {4, 2, 3});
               }});
  c.push_back({"RMSNorm",
               [] {
                 auto net = single(dp::RMSNorm(5));
                 torch::NoGradGuard g;
                 for (auto& p : net->parameters()) p.uniform_(-1, 1);
                 return net;
               },
               [](int64_t n) {
                 return randn_rows(n, {3, 5});
               }});
  c.push_back({"ScaleVector", [] { return single(dp::Scale(V{3})); },
               [](int64_t n) {
                 return randn_rows(n, {2, 3});
               }});
  c.push_back({"ScalePerChannel",
               [] {
                 return single(dp::Scale(V{2, 1, 1}));
               },
               [](int64_t n) {
                 return randn_rows(n, {2, 3, 3});
               }});
  c.push_back({"Bias", [] { return single(dp::Bias(V{3})); },
               [](int64_t n) {
                 return randn_rows(n, {4, 3});
               }});
  c.push_back({"Embedding", [] { return single(dp::Embedding(7, 4)); },
               [](int64_t n) { return indices(n, 5, 7); }});
  c.push_back({"EmbeddingPaddingIdx",
               [] {
                 return single(
                     dp::Embedding(dp::EmbeddingOptions(5, 3).padding_idx(0)));
               },
               [](int64_t n) { return indices(n, 6, 5); }});
  c.push_back({"FrozenFirstLayer",
               [] {
                 auto net = std::make_shared<LambdaNet>();
                 auto a = reg(*net, "a", dp::Linear(4, 6));
                 auto b = reg(*net, "b", dp::Linear(6, 2));
                 for (auto& p : a->parameters()) p.set_requires_grad(false);
                 net->body = [=](const torch::Tensor& x) mutable {
                   return b(torch::tanh(a(x)));
                 };
                 return net;
               },
               [](int64_t n) { return randn_rows(n, {4}); }});
  c.push_back({"LayerCalledTwice",
               [] {
                 auto net = std::make_shared<LambdaNet>();
                 auto a = reg(*net, "a", dp::Linear(3, 3));
                 net->body = [=](const torch::Tensor& x) mutable {
                   return a(torch::tanh(a(x)));
                 };
                 return net;
               },
               [](int64_t n) { return randn_rows(n, {3}); }});
  c.push_back({"Mlp",
               [] {
                 auto net = std::make_shared<LambdaNet>();
                 auto seq = reg(
                     *net, "mlp",
                     torch::nn::Sequential(dp::Linear(6, 8), torch::nn::Tanh(),
                                           dp::Linear(8, 8), torch::nn::ReLU(),
                                           dp::Linear(8, 3)));
                 net->body = [seq](const torch::Tensor& x) mutable {
                   return seq->forward(x);
                 };
                 return net;
               },
               [](int64_t n) { return randn_rows(n, {6}); }});
  c.push_back({"FashionMnistCnn", fashion_cnn, [](int64_t n) {
                 return randn_rows(n, {1, 28, 28});
               }});
  c.push_back({"TinyWrn", tiny_wrn, [](int64_t n) {
                 return randn_rows(n, {3, 8, 8});
               }});
  c.push_back({"TinyTransformer", [] { return tiny_transformer(false); },
               [](int64_t n) { return indices(n, 5, 11); }});
  c.push_back({"TinyTransformerTiedWeights",
               [] { return tiny_transformer(true); },
               [](int64_t n) { return indices(n, 5, 11); }});
  return c;
}

// Per-row loss: Σ_j (r_j·y_j + ½ y_j²), nonlinear so G depends on y.
torch::Tensor row_loss(const torch::Tensor& y, const torch::Tensor& r) {
  return (r * y + 0.5 * y * y).flatten(1).sum(1);
}

void clear_grads(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.mutable_grad() = torch::Tensor();
}

std::vector<torch::Tensor> grads_of(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> g;
  for (const auto& p : params)
    g.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return g;
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  const double scale = std::max(b.norm().item<double>(), 1e-300);
  const double diff = (a - b).norm().item<double>();
  return b.numel() == 0 || (diff == 0.0) ? 0.0 : diff / scale;
}

struct Run {
  std::vector<torch::Tensor> grads;
  torch::Tensor norms;
};

Run run_oracle(LambdaNet& net, const torch::Tensor& x, const torch::Tensor& r,
               int64_t batch, int64_t k, const dp::ClippingOptions& opts,
               const std::vector<torch::Tensor>& params) {
  clear_grads(net);
  auto result = dp::microbatch_clip_and_accumulate(
      net, batch,
      [&](int64_t i) {
        return row_loss(net.forward(x.slice(0, i * k, (i + 1) * k)),
                        r.slice(0, i * k, (i + 1) * k));
      },
      opts);
  return {grads_of(params), result.diagnostics->norms};
}

Run run_engine(const std::shared_ptr<LambdaNet>& net, const torch::Tensor& x,
               const torch::Tensor& r, int64_t k,
               const dp::ClippingOptions& opts,
               const std::vector<torch::Tensor>& params) {
  clear_grads(*net);
  dp::GradientEngine engine(net, opts);
  dp::ClipResult result;
  {
    auto recording = engine.record();
    result = engine.clip_and_accumulate(row_loss(net->forward(x), r), k);
  }
  return {grads_of(params), result.diagnostics->norms};
}

// C = the oracle's median unclipped norm, so that some examples are
// clipped; 1 when there is none (B = 0) or it is 0.
double median_norm(LambdaNet& net, const torch::Tensor& x,
                   const torch::Tensor& r, int64_t batch, int64_t k,
                   const std::vector<torch::Tensor>& params) {
  if (batch == 0) return 1.0;
  auto probe = run_oracle(net, x, r, batch, k,
                          dp::ClippingOptions(1e30).diagnostics(true), params);
  const double c = std::get<0>(probe.norms.median(0)).item<double>();
  return c > 0.0 ? c : 1.0;
}

class EngineOracle : public ::testing::TestWithParam<Case> {};

// Every case on `device` (the model, inputs and residuals moved there after
// being drawn on the CPU), engine against oracle.
void check_against_oracle(const Case& c, const c10::Device& device) {
  for (int64_t batch : {0, 1, 3, 8}) {
    for (int64_t k : {1, 2}) {
      torch::manual_seed(17 + batch * 3 + k);
      auto net = c.make();
      net->to(torch::kDouble);
      net->to(device);
      auto params = net->parameters();
      auto x = c.input(batch * k).to(device);
      torch::Tensor y;
      {
        torch::NoGradGuard g;
        y = net->forward(x);
      }
      auto r = torch::randn(y.sizes(), torch::kDouble).to(device);
      const double c_norm = median_norm(*net, x, r, batch, k, params);
      for (auto mode : {dp::ClipMode::kFlat, dp::ClipMode::kPerLayer}) {
        for (bool normalize : {false, true}) {
          if (normalize && mode == dp::ClipMode::kPerLayer) continue;
          auto opts = dp::ClippingOptions(c_norm)
                          .mode(mode)
                          .normalize(normalize)
                          .diagnostics(true);
          SCOPED_TRACE(c.name + " B=" + std::to_string(batch) +
                       " K=" + std::to_string(k) +
                       (mode == dp::ClipMode::kFlat ? " flat" : " per-layer") +
                       (normalize ? " normalize" : ""));
          auto want = run_oracle(*net, x, r, batch, k, opts, params);
          auto got = run_engine(net, x, r, k, opts, params);
          ASSERT_EQ(got.norms.sizes(), want.norms.sizes());
          EXPECT_LE(rel_diff(got.norms, want.norms), 1e-9);
          for (size_t i = 0; i < params.size(); ++i) {
            if (!params[i].requires_grad()) {
              EXPECT_FALSE(got.grads[i].defined())
                  << "frozen parameter got a grad";
              continue;
            }
            ASSERT_TRUE(got.grads[i].defined());
            ASSERT_TRUE(want.grads[i].defined());
            EXPECT_LE(rel_diff(got.grads[i], want.grads[i]), 1e-9)
                << "parameter " << i;
          }
        }
      }
    }
  }
}

TEST_P(EngineOracle, MatchesMicrobatchOracle) {
  check_against_oracle(GetParam(), torch::kCPU);
}

// Label `cuda` (ctest -L cuda; scripts/gpu_check.sh): skipped without a GPU.
TEST_P(EngineOracle, CudaMatchesMicrobatchOracle) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  check_against_oracle(GetParam(), c10::Device(c10::kCUDA, 0));
}

INSTANTIATE_TEST_SUITE_P(AllLayers, EngineOracle, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return p.param.name;
                         });

// A case's float64 model, its parameters, `rows` input rows and the loss's
// residuals r, drawn after torch::manual_seed(seed).
struct Prepared {
  std::shared_ptr<LambdaNet> net;
  std::vector<torch::Tensor> params;
  torch::Tensor x, r;
};
Prepared prepare(const Case& c, int64_t rows, uint64_t seed) {
  torch::manual_seed(seed);
  Prepared p;
  p.net = c.make();
  p.net->to(torch::kDouble);
  p.params = p.net->parameters();
  p.x = c.input(rows);
  torch::Tensor y;
  {
    torch::NoGradGuard g;
    y = p.net->forward(p.x);
  }
  p.r = torch::randn(y.sizes(), torch::kDouble);
  return p;
}

// Collects the route of every layer call the engine sets one on.
struct RouteRecorder : dp::EngineObserver {
  std::set<std::string> taken;
  void layer_end(dp::EnginePhase phase, const dp::LayerCall& call,
                 bool /*kept*/) override {
    if (phase == dp::EnginePhase::kNorms && !call.route.empty()) {
      taken.insert(call.route);
    }
  }
};

// Every route of every rule, forced on every case that offers it (routes.h:
// the measured choice may pick any), against the oracle in float64; and
// each route name is taken by some case.
TEST(EngineRoutes, EveryRouteOfEveryCaseMatchesTheOracle) {
  const std::vector<std::string> routes = {"ghost", "grouped", "loop", "bmm",
                                           "materialised"};
  std::set<std::string> taken;
  for (const auto& c : cases()) {
    for (const auto& route : routes) {
      for (int64_t k : {1, 2}) {
        const int64_t batch = 3;
        const Prepared p = prepare(c, batch * k, 5 + k);
        const auto& net = p.net;
        const auto& params = p.params;
        const auto& x = p.x;
        const auto& r = p.r;
        const double c_norm = median_norm(*net, x, r, batch, k, params);
        auto opts = dp::ClippingOptions(c_norm).diagnostics(true);
        SCOPED_TRACE(c.name + " route " + route + " K=" + std::to_string(k));
        auto want = run_oracle(*net, x, r, batch, k, opts, params);
        clear_grads(*net);
        dp::GradientEngine engine(net, opts);
        dp::RoutePolicy policy;
        policy.forced = route;
        engine.set_route_policy(policy);
        RouteRecorder recorder;
        engine.set_observer(&recorder);
        dp::ClipResult result;
        {
          auto recording = engine.record();
          result = engine.clip_and_accumulate(row_loss(net->forward(x), r), k);
        }
        if (recorder.taken.count(route) != 0) taken.insert(route);
        EXPECT_LE(rel_diff(result.diagnostics->norms, want.norms), 1e-9);
        auto got = grads_of(params);
        for (size_t i = 0; i < params.size(); ++i) {
          if (!params[i].requires_grad()) continue;
          ASSERT_TRUE(got[i].defined());
          EXPECT_LE(rel_diff(got[i], want.grads[i]), 1e-9) << "parameter " << i;
        }
      }
    }
  }
  for (const auto& route : routes) {
    EXPECT_EQ(taken.count(route), 1u) << "no case took route " << route;
  }
}

// Counts the layer calls whose norms left per-example gradients kept.
struct KeptCounter : dp::EngineObserver {
  int kept = 0;
  int calls = 0;
  void layer_end(dp::EnginePhase phase, const dp::LayerCall& /*call*/,
                 bool kept_here) override {
    if (phase != dp::EnginePhase::kNorms) return;
    ++calls;
    kept += kept_here ? 1 : 0;
  }
};

// A kept-memory bound of 0 frees every kept per-example gradient: the
// weighted sums then come from A and G, and still match the oracle. Without
// a bound the same models keep some (so the bound changed the path).
TEST(EngineKeptBudget, ZeroBoundFreesEveryKeptTensorAndMatchesTheOracle) {
  for (const auto& c : cases()) {
    for (int64_t k : {1, 2}) {
      const int64_t batch = 3;
      const Prepared p = prepare(c, batch * k, 11 + k);
      const auto& net = p.net;
      const auto& params = p.params;
      const auto& x = p.x;
      const auto& r = p.r;
      auto opts = dp::ClippingOptions(0.05).diagnostics(true);
      SCOPED_TRACE(c.name + " K=" + std::to_string(k));
      auto want = run_oracle(*net, x, r, batch, k, opts, params);
      auto run = [&](int64_t bound, KeptCounter& counter) {
        clear_grads(*net);
        dp::GradientEngine engine(net, opts);
        engine.set_max_kept_bytes(bound, 0);
        engine.set_observer(&counter);
        {
          auto recording = engine.record();
          engine.clip_and_accumulate(row_loss(net->forward(x), r), k);
        }
        return grads_of(params);
      };
      KeptCounter unbounded, bounded;
      run(int64_t{1} << 40, unbounded);
      auto got = run(0, bounded);
      EXPECT_EQ(bounded.kept, 0) << "of " << bounded.calls << " calls";
      for (size_t i = 0; i < params.size(); ++i) {
        if (!params[i].requires_grad()) continue;
        ASSERT_TRUE(got[i].defined());
        EXPECT_LE(rel_diff(got[i], want.grads[i]), 1e-9) << "parameter " << i;
      }
      if (c.name == "FashionMnistCnn" || c.name == "TinyWrn" ||
          c.name == "LinearSequenceMaterialised") {
        EXPECT_GT(unbounded.kept, 0);
      }
    }
  }
}

// Two backward passes (norms as each output gradient arrives, then the
// backward of Σ cᵢ·lossᵢ): every case without tied weights against the
// oracle in float64, flat clipping, plain and normalized, B ∈ {0, 1, 3},
// K ∈ {1, 2}; per-layer clipping and tied weights are refused by name.
TEST(EngineTwoPass, MatchesTheOracleAndRefusesWhatItCannotDo) {
  for (const auto& c : cases()) {
    const bool tied =
        c.name == "TinyTransformerTiedWeights" || c.name == "LayerCalledTwice";
    for (int64_t batch : {0, 1, 3}) {
      for (int64_t k : {1, 2}) {
        const Prepared p = prepare(c, batch * k, 23 + batch + k);
        const auto& net = p.net;
        const double c_norm = median_norm(*net, p.x, p.r, batch, k, p.params);
        for (bool normalize : {false, true}) {
          SCOPED_TRACE(c.name + " B=" + std::to_string(batch) + " K=" +
                       std::to_string(k) + (normalize ? " normalize" : ""));
          auto opts =
              dp::ClippingOptions(c_norm).normalize(normalize).diagnostics(
                  true);
          auto want = run_oracle(*net, p.x, p.r, batch, k, opts, p.params);
          clear_grads(*net);
          dp::GradientEngine engine(net, opts);
          engine.set_backward_passes(2);
          auto run = [&] {
            auto recording = engine.record();
            return engine.clip_and_accumulate(row_loss(net->forward(p.x), p.r),
                                              k);
          };
          if (tied && batch > 0) {
            EXPECT_THROW(run(), std::invalid_argument);
            continue;
          }
          auto result = run();
          EXPECT_LE(rel_diff(result.diagnostics->norms, want.norms), 1e-9);
          auto got = grads_of(p.params);
          for (size_t i = 0; i < p.params.size(); ++i) {
            if (!p.params[i].requires_grad()) {
              EXPECT_FALSE(got[i].defined());
              continue;
            }
            ASSERT_TRUE(got[i].defined());
            EXPECT_LE(rel_diff(got[i], want.grads[i]), 1e-9)
                << "parameter " << i;
          }
        }
      }
    }
  }
  auto net = prepare(cases().front(), 3, 1).net;
  dp::GradientEngine engine(
      net, dp::ClippingOptions(1.0).mode(dp::ClipMode::kPerLayer));
  engine.set_backward_passes(2);
  auto x = cases().front().input(3);
  try {
    auto recording = engine.record();
    engine.clip_and_accumulate(net->forward(x).pow(2).sum(1));
    FAIL() << "per-layer clipping was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("flat norm only"), std::string::npos);
  }
  EXPECT_THROW(engine.set_backward_passes(3), std::invalid_argument);
}

// A DP layer's output that no rule reads is not held by the recording: after
// the forward it lives only if autograd holds it (tanh saves its result, not
// its input). A WSConv2d output its ghost route reads is held. The sums are
// still the oracle's (EngineOracle); here, that the engine still runs.
TEST(GradientEngine, OutputsNoRuleReadsAreNotHeld) {
  using Weak = c10::weak_intrusive_ptr<c10::TensorImpl>;
  auto check = [](auto layer, const torch::Tensor& x, bool held) {
    auto net = std::make_shared<LambdaNet>();
    net->register_module("layer", layer);
    std::optional<Weak> weak;
    net->body = [&](const torch::Tensor& in) {
      auto y = layer(in);
      weak.emplace(y.getIntrusivePtr());
      return torch::tanh(y).flatten(1);
    };
    dp::GradientEngine engine(net, dp::ClippingOptions(1.0));
    auto recording = engine.record();
    auto out = net->forward(x);
    EXPECT_EQ(weak->expired(), !held);
    engine.clip_and_accumulate(out.pow(2).sum(1));
    for (const auto& p : net->parameters()) EXPECT_TRUE(p.grad().defined());
  };
  check(dp::Linear(4, 3), torch::randn({5, 4}), false);
  check(dp::Conv2d(dp::Conv2dOptions(2, 3, 3).padding(1)),
        torch::randn({5, 2, 6, 6}), false);
  // The cost model's ghost route for this WSConv2d (the WSConv2dGhost case).
  check(dp::WSConv2d(dp::WSConv2dOptions(8, 16, 3).padding(1)),
        torch::randn({4, 8, 4, 4}), true);
}

// One backward pass releases each call's A and G as soon as its norms are
// taken, where its weighted sum will not read them: kept per-example
// gradients (Conv2d grouped, GroupNorm) or rule state (WSConv2d grouped, its
// dŴ). Where the sum reads them (the ghost routes of WSConv2d and of a
// Linear on [B, in]) they are held to the weighted sums; with nothing kept
// (a zero bound) all are. Checked with weak references taken when each
// call's norms end, looked at when the clip factors begin; and the norms of
// the layers above the pooling are taken before the backward reaches it (a
// tensor hook there), i.e. during the backward, not after it.
TEST(GradientEngine, OnePassReleasesWhatTheWeightedSumsDoNotRead) {
  using Weak = c10::weak_intrusive_ptr<c10::TensorImpl>;
  struct Watch final : dp::EngineObserver {
    std::map<const torch::nn::Module*, std::pair<Weak, Weak>> refs;
    std::map<const torch::nn::Module*, bool> alive;  // A and G, at factors
    std::vector<const torch::nn::Module*>* order = nullptr;  // norms begun
    void layer_begin(dp::EnginePhase phase,
                     const dp::LayerCall& call) override {
      if (phase == dp::EnginePhase::kNorms) order->push_back(call.layer);
    }
    void layer_end(dp::EnginePhase phase, const dp::LayerCall& call,
                   bool) override {
      if (phase != dp::EnginePhase::kNorms) return;
      refs.emplace(call.layer,
                   std::make_pair(Weak(call.input.getIntrusivePtr()),
                                  Weak(call.grad_output.getIntrusivePtr())));
    }
    void phase_begin(dp::EnginePhase phase) override {
      if (phase != dp::EnginePhase::kClipFactors) return;
      for (const auto& [layer, ab] : refs) {
        EXPECT_EQ(ab.first.expired(), ab.second.expired()) << layer->name();
        alive[layer] = !ab.first.expired();
      }
    }
  };
  auto net = std::make_shared<LambdaNet>();
  auto conv = net->register_module(
      "conv", dp::Conv2d(dp::Conv2dOptions(2, 8, 3).padding(1)));
  auto norm = net->register_module("norm", dp::GroupNorm(2, 8));
  auto ws_grouped = net->register_module(
      "ws_grouped", dp::WSConv2d(dp::WSConv2dOptions(8, 8, 3).padding(1)));
  // The cost model's ghost route for this WSConv2d (the WSConv2dGhost case).
  auto ws_ghost = net->register_module(
      "ws_ghost", dp::WSConv2d(dp::WSConv2dOptions(8, 16, 3).padding(1)));
  auto linear = net->register_module("linear", dp::Linear(16 * 16, 3));
  std::vector<const torch::nn::Module*> order;  // nullptr: the pooling
  net->body = [&](const torch::Tensor& x) {
    auto h = torch::tanh(norm->forward(conv->forward(x)));
    // 16×16 maps for the grouped WSConv2d, 4×4 for the ghost one.
    h = torch::avg_pool2d(torch::tanh(ws_grouped->forward(h)), 4);
    if (h.requires_grad()) {
      h.register_hook([&](const torch::Tensor&) { order.push_back(nullptr); });
    }
    h = torch::tanh(ws_ghost->forward(h));
    return linear->forward(h.flatten(1));
  };

  const auto x = torch::randn({4, 2, 16, 16});
  auto run = [&](int64_t max_kept) {
    dp::GradientEngine engine(net, dp::ClippingOptions(1.0));
    engine.set_max_kept_bytes(max_kept, 0);
    Watch watch;
    order.clear();
    watch.order = &order;
    engine.set_observer(&watch);
    auto recording = engine.record();
    engine.clip_and_accumulate(net->forward(x).pow(2).sum(1));
    EXPECT_EQ(watch.alive.size(), 5U);
    return watch.alive;
  };
  auto alive = run(-1);
  EXPECT_FALSE(alive.at(conv.get())) << "Conv2d, per-example kept";
  EXPECT_FALSE(alive.at(norm.get())) << "GroupNorm, per-example kept";
  EXPECT_FALSE(alive.at(ws_grouped.get())) << "WSConv2d, dW kept";
  EXPECT_TRUE(alive.at(ws_ghost.get())) << "WSConv2d ghost";
  EXPECT_TRUE(alive.at(linear.get())) << "Linear ghost";
  const std::vector<const torch::nn::Module*> arrival = {
      linear.get(),     ws_ghost.get(), nullptr,
      ws_grouped.get(), norm.get(),     conv.get()};
  EXPECT_EQ(order, arrival);
  for (const auto& [layer, held] : run(0)) {
    EXPECT_TRUE(held) << layer->name() << " with nothing kept";
  }
}

// An example whose gradient is 10⁶ times larger contributes exactly norm C.
TEST(GradientEngine, HugeExampleContributesExactlyC) {
  torch::manual_seed(3);
  auto net = single(dp::Linear(4, 3));
  net->to(torch::kDouble);
  auto x = torch::randn({3, 4}, torch::kDouble);
  auto r = torch::randn({3, 3}, torch::kDouble);
  x[1] *= 1e6;
  r[1] *= 1e6;
  const double c = 0.7;
  dp::GradientEngine engine(net, dp::ClippingOptions(c));
  auto sum_of = [&](const torch::Tensor& rows) {
    clear_grads(*net);
    auto recording = engine.record();
    engine.clip_and_accumulate(row_loss(net->forward(x.index_select(0, rows)),
                                        r.index_select(0, rows)));
    torch::Tensor flat;
    std::vector<torch::Tensor> parts;
    for (auto& p : net->parameters()) parts.push_back(p.grad().flatten());
    return torch::cat(parts);
  };
  auto all = sum_of(torch::tensor({0, 1, 2}));
  auto rest = sum_of(torch::tensor({0, 2}));
  auto alone = sum_of(torch::tensor({1}));
  EXPECT_NEAR((all - rest).norm().item<double>(), c, 1e-9 * c);
  EXPECT_NEAR(alone.norm().item<double>(), c, 1e-9 * c);
}

TEST(GradientEngine, AddsToExistingGradAndDiagnosticsAreOffByDefault) {
  torch::manual_seed(4);
  auto net = single(dp::Linear(3, 2));
  net->to(torch::kDouble);
  auto x = torch::randn({2, 3}, torch::kDouble);
  dp::GradientEngine engine(net, dp::ClippingOptions(1e9));
  for (auto& p : net->parameters()) p.mutable_grad() = torch::ones_like(p);
  dp::ClipResult result;
  {
    auto recording = engine.record();
    result = engine.clip_and_accumulate(net->forward(x).sum(1));
  }
  EXPECT_FALSE(result.diagnostics.has_value());
  EXPECT_EQ(result.batch_size, 2);
  EXPECT_DOUBLE_EQ(result.sensitivity, 1e9);
  // d/dW Σ_i Σ_o (W x_i + b)_o = 1 ⊗ Σ_i x_i; d/db = B.
  auto lin = std::dynamic_pointer_cast<dp::LinearImpl>(net->children()[0]);
  auto expected_w = 1.0 + x.sum(0).unsqueeze(0).expand({2, 3});
  EXPECT_TRUE(torch::allclose(lin->weight.grad(), expected_w, 1e-12, 1e-12));
  EXPECT_TRUE(
      torch::allclose(lin->bias.grad(), torch::full({2}, 3.0, torch::kDouble)));
}

TEST(GradientEngine, EmptyBatchLeavesZeroGrads) {
  auto net = single(dp::Linear(3, 2));
  dp::GradientEngine engine(net, dp::ClippingOptions(1.0));
  dp::ClipResult result;
  {
    auto recording = engine.record();
    result =
        engine.clip_and_accumulate(net->forward(torch::zeros({0, 3})).sum(1));
  }
  EXPECT_EQ(result.batch_size, 0);
  for (auto& p : net->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().abs().sum().item<double>(), 0.0);
  }
}

TEST(GradientEngine, TiedWeightsAppearOnceInParameters) {
  auto net = tiny_transformer(true);
  dp::GradientEngine engine(net, dp::ClippingOptions(1.0));
  EXPECT_EQ(engine.parameters().size(), net->parameters().size() - 1);
}

TEST(ClipFactors, FlatPerLayerAndNormalizedByHand) {
  auto norms = torch::tensor({0.5, 2.0, 4.0}, torch::kDouble);
  auto flat = dp::detail::clip_factors(norms, dp::ClippingOptions(1.0), 1);
  EXPECT_NEAR(flat[0].item<double>(), 1.0, 1e-15);
  EXPECT_NEAR(flat[1].item<double>(), 1.0 / (2.0 + 1e-6), 1e-15);
  EXPECT_NEAR(flat[2].item<double>(), 1.0 / (4.0 + 1e-6), 1e-15);
  // Per layer, L = 4: C_l = 2 / √4 = 1.
  auto per_layer = dp::detail::clip_factors(
      norms, dp::ClippingOptions(2.0).mode(dp::ClipMode::kPerLayer), 4);
  EXPECT_NEAR(per_layer[2].item<double>(), 1.0 / (4.0 + 1e-6), 1e-15);
  // Normalised: divided by C = 2.
  auto normalized = dp::detail::clip_factors(
      norms, dp::ClippingOptions(2.0).normalize(true), 1);
  EXPECT_NEAR(normalized[0].item<double>(), 0.5, 1e-15);
  EXPECT_NEAR(normalized[2].item<double>(), 0.5 * 2.0 / (4.0 + 1e-6), 1e-15);
}

TEST(ClipDiagnostics, FractionAndQuantilesByHand) {
  auto norms = torch::tensor({1.0, 3.0, 5.0}, torch::kDouble);
  dp::ClippingOptions opts(2.0);
  auto d = dp::detail::make_diagnostics(
      norms, dp::detail::clip_factors(norms, opts, 1), opts);
  EXPECT_NEAR(d.fraction_clipped, 2.0 / 3.0, 1e-15);
  ASSERT_EQ(d.norm_quantiles.size(), 5u);
  EXPECT_DOUBLE_EQ(d.norm_quantiles[0], 1.0);
  EXPECT_DOUBLE_EQ(d.norm_quantiles[1], 2.0);
  EXPECT_DOUBLE_EQ(d.norm_quantiles[2], 3.0);
  EXPECT_DOUBLE_EQ(d.norm_quantiles[4], 5.0);
}

}  // namespace
