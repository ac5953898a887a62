// Route choice by measurement (dptrain/dp/clipping/routes.h): the search
// fills the table once per layer shape and gives the cost model's sums to
// rounding; the cache file round-trips, keeps other machines' entries and
// names a malformed line; the fixed mode takes the table's routes and never
// searches. Each route's exactness is EngineRoutes (engine_oracle_test.cpp).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/routes.h"
#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/linear.h"

namespace dp = dptrain::dp;
namespace fs = std::filesystem;

namespace {

// A conv net with a pointwise layer (four routes), a 3×3 layer (ghost or
// grouped) and a sequence Linear (ghost or materialised).
struct RouteNet : torch::nn::Module {
  RouteNet()
      : conv(register_module(
            "conv", dp::Conv2d(dp::Conv2dOptions(2, 6, 3).padding(1)))),
        pointwise(register_module("pointwise", dp::Conv2d(6, 4, 1))),
        mix(register_module("mix", dp::Linear(6, 5))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = torch::tanh(pointwise(torch::tanh(conv(x))));  // [N, 4, 5, 6]
    auto seq = h.flatten(2).transpose(1, 2).reshape({x.size(0), -1, 6});
    return mix(seq).flatten(1);  // [N, 5·20]
  }
  dp::Conv2d conv;
  dp::Conv2d pointwise;
  dp::Linear mix;
};

struct Recorded : dp::EngineObserver {
  std::map<std::string, std::string> route_of;  // layer name → route
  void layer_end(dp::EnginePhase phase, const dp::LayerCall& call,
                 bool /*kept*/) override {
    if (phase != dp::EnginePhase::kNorms || call.route.empty()) return;
    std::ostringstream os;
    call.layer->pretty_print(os);
    route_of[os.str()] = call.route;
  }
};

struct Step {
  std::vector<torch::Tensor> grads;
  std::map<std::string, std::string> routes;
};

Step step(const std::shared_ptr<RouteNet>& net, const dp::RoutePolicy& policy,
          int64_t batch, int passes = 1) {
  torch::manual_seed(3);
  auto x = torch::randn({batch, 2, 5, 6}, torch::kDouble);
  for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
  dp::GradientEngine engine(net, dp::ClippingOptions(0.5));
  engine.set_route_policy(policy);
  engine.set_backward_passes(passes);
  Recorded recorded;
  engine.set_observer(&recorded);
  {
    auto recording = engine.record();
    auto y = net->forward(x);
    engine.clip_and_accumulate((y * y).sum(1) + y.sum(1));
  }
  Step out;
  for (const auto& p : net->parameters()) out.grads.push_back(p.grad().clone());
  out.routes = recorded.route_of;
  return out;
}

std::shared_ptr<RouteNet> make_net() {
  torch::manual_seed(1);
  auto net = std::make_shared<RouteNet>();
  net->to(torch::kDouble);
  return net;
}

fs::path temp_file(const std::string& name) {
  auto dir = fs::temp_directory_path() /
             ("dptrain_route_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto path = dir / name;
  fs::remove(path);
  return path;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(RouteSearch, MeasureFillsTheTableOnceAndMatchesTheCostModel) {
  auto net = make_net();
  const auto want = step(net, {}, 5);
  ASSERT_EQ(want.routes.size(), 3u);  // every layer has a choice

  dp::RoutePolicy policy;
  policy.search = dp::RouteSearch::kMeasure;
  policy.table = std::make_shared<dp::RouteTable>();
  const auto cache = temp_file("routes.tsv");
  policy.cache_file = cache.string();
  const auto got = step(net, policy, 5);
  EXPECT_EQ(policy.table->size(), 3u);
  for (size_t i = 0; i < want.grads.size(); ++i) {
    const double scale = want.grads[i].norm().item<double>();
    EXPECT_LE((got.grads[i] - want.grads[i]).norm().item<double>(),
              1e-10 * scale)
        << "parameter " << i;
  }
  // The file holds the three routes under this machine's context.
  const auto text = read_all(cache);
  EXPECT_EQ(text.rfind("# dptrain route cache v1", 0), 0u) << text;
  EXPECT_NE(text.find(dp::route_context() + "\t"), std::string::npos) << text;
  for (const auto& [key, route] : policy.table->entries()) {
    EXPECT_NE(text.find(key + "\t" + route + "\n"), std::string::npos) << key;
    EXPECT_EQ(key.find('\t'), std::string::npos);
  }

  // 7 rows share the bucket of 5 (N <= 8): no search, so no new entry and
  // no write (the file, removed, does not come back); 9 rows are searched.
  fs::remove(cache);
  step(net, policy, 7);
  EXPECT_EQ(policy.table->size(), 3u);
  EXPECT_FALSE(fs::exists(cache));
  step(net, policy, 9);
  EXPECT_EQ(policy.table->size(), 6u);
  EXPECT_TRUE(fs::exists(cache));
}

TEST(RouteSearch, FixedTakesTheTablesRoutesAndNeverSearches) {
  auto net = make_net();
  dp::RoutePolicy measure;
  measure.search = dp::RouteSearch::kMeasure;
  measure.table = std::make_shared<dp::RouteTable>();
  step(net, measure, 4);
  ASSERT_EQ(measure.table->size(), 3u);

  // Every entry set to a route the layer offers that the cost model does
  // not pick for it: the fixed run must take it.
  const auto model = step(net, {}, 4).routes;
  const std::map<std::string, std::vector<std::string>> offered = {
      {"conv", {"ghost", "grouped"}},
      {"pointwise", {"grouped", "loop", "bmm"}},
      {"mix", {"ghost", "materialised"}}};
  dp::RoutePolicy fixed;
  fixed.search = dp::RouteSearch::kFixed;
  fixed.table = std::make_shared<dp::RouteTable>();
  std::map<std::string, std::string> expected;  // printed layer → route
  for (const auto& [key, route] : measure.table->entries()) {
    for (const auto& [printed, model_route] : model) {
      if (key.rfind(printed + " ", 0) != 0) continue;
      const bool linear = printed.find("Linear") != std::string::npos;
      const bool one_by_one =
          printed.find("kernel_size=[1, 1]") != std::string::npos;
      const auto& names =
          offered.at(linear ? "mix" : (one_by_one ? "pointwise" : "conv"));
      for (const auto& name : names) {
        if (name == model_route) continue;
        fixed.table->insert(key, name);
        expected[printed] = name;
        break;
      }
    }
  }
  ASSERT_EQ(expected.size(), 3u);
  const auto got = step(net, fixed, 4);
  EXPECT_EQ(got.routes, expected);
  EXPECT_EQ(fixed.table->size(), 3u);
  // Two backward passes choose routes the same way (in their hooks).
  EXPECT_EQ(step(net, fixed, 4, 2).routes, expected);
  // A shape not in the table: the cost model's route, nothing added.
  const auto other = step(net, fixed, 16);
  EXPECT_EQ(fixed.table->size(), 3u);
  EXPECT_EQ(other.routes, step(net, {}, 16).routes);
}

TEST(RouteSearch, ForcedRouteWinsWhereOffered) {
  auto net = make_net();
  dp::RoutePolicy policy;
  policy.forced = "grouped";
  const auto got = step(net, policy, 3);
  int grouped = 0;
  for (const auto& [layer, route] : got.routes) {
    if (layer.find("Conv2d") != std::string::npos) {
      EXPECT_EQ(route, "grouped") << layer;
      ++grouped;
    } else {
      EXPECT_NE(route, "grouped") << layer;  // Linear has no such route
    }
  }
  EXPECT_EQ(grouped, 2);
}

TEST(RouteTable, CacheFileKeepsOtherContextsAndIsReplacedWhole) {
  const auto path = temp_file("cache.tsv");
  {
    std::ofstream out(path);
    out << "# a comment\n\nother cpu | threads 8\tkey a\tghost\n";
  }
  dp::RouteTable table;
  table.load(path.string(), "this cpu");
  EXPECT_EQ(table.size(), 0u);  // another machine's entry is not used
  table.insert("key b", "bmm");
  table.save(path.string(), "this cpu");
  dp::RouteTable mine, theirs;
  mine.load(path.string(), "this cpu");
  theirs.load(path.string(), "other cpu | threads 8");
  EXPECT_EQ(mine.entries(),
            (std::map<std::string, std::string>{{"key b", "bmm"}}));
  EXPECT_EQ(theirs.entries(),
            (std::map<std::string, std::string>{{"key a", "ghost"}}));
  // No temporary file is left beside it.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(path.parent_path())) {
    files += entry.path().filename().string().rfind("cache.tsv", 0) == 0;
  }
  EXPECT_EQ(files, 1);
  // A missing file holds nothing.
  dp::RouteTable none;
  none.load((path.string() + ".absent"), "this cpu");
  EXPECT_EQ(none.size(), 0u);
}

TEST(RouteTable, MalformedCacheNamesTheFileAndLine) {
  const auto path = temp_file("bad.tsv");
  {
    std::ofstream out(path);
    out << "# header\nctx\tkey\tghost\nctx only two\tfields\n";
  }
  dp::RouteTable table;
  try {
    table.load(path.string(), "ctx");
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path.string() + " line 3"), std::string::npos) << what;
  }
}

TEST(RouteSearch, BadSettingsAreNamed) {
  EXPECT_EQ(dp::parse_route_search("measure"), dp::RouteSearch::kMeasure);
  EXPECT_EQ(dp::parse_route_search("fixed"), dp::RouteSearch::kFixed);
  EXPECT_EQ(dp::parse_route_search("model"), dp::RouteSearch::kCostModel);
  try {
    dp::parse_route_search("fastest");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'fastest'"), std::string::npos);
  }
  auto net = make_net();
  dp::GradientEngine engine(net, dp::ClippingOptions(1.0));
  dp::RoutePolicy policy;
  policy.repeats = 0;
  EXPECT_THROW(engine.set_route_policy(policy), std::invalid_argument);
  EXPECT_NE(dp::route_context().find(" | threads "), std::string::npos);
}
