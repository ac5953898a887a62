// The model registry: names, defaults, counts without allocation.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

#include "dptrain/models/registry.h"
#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::error_of;
using dptrain::test_support::expect_error;

TEST(Registry, ListsThePapersModels) {
  const auto names = m::list_models();
  for (const char* n : {"cnn", "mlp", "wrn-16-4", "wrn-40-4", "wrn-28-10",
                        "nf-resnet-50", "nfnet-f0", "nfnet-f1", "nfnet-f3"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
}

TEST(Registry, KnowsTheSequenceModelsToo) {
  const auto all = m::list_all_models();
  for (const char* n : {"cnn", "nfnet-f0", "griffin-tiny", "hawk-tiny",
                        "griffin-25m", "hawk-25m", "recurrentgemma-2b"}) {
    EXPECT_NE(std::find(all.begin(), all.end(), n), all.end()) << n;
  }
  const auto gemma = m::model_info("recurrentgemma-2b");
  EXPECT_EQ(gemma.kind, "sequence");
  EXPECT_EQ(gemma.family, "recurrentgemma");
  EXPECT_EQ(gemma.parameters,
            2682862080);  // the published count (Botev et al. 2024)
  EXPECT_EQ(gemma.vocab_size, 256000);
  EXPECT_EQ(m::model_info("hawk-25m").family, "hawk");
  EXPECT_EQ(m::model_info("griffin-25m").parameters, 25369088);
  EXPECT_EQ(m::model_info("cnn").kind, "image");
  EXPECT_EQ(error_of<std::invalid_argument>([] { m::make_model("hawk-tiny"); }),
            "model 'hawk-tiny' is a language model (--task lm), not an image "
            "classifier");
}

TEST(Registry, UnknownNameListsKnownOnes) {
  const auto msg =
      error_of<std::invalid_argument>([] { m::make_model("resnet-18"); });
  EXPECT_NE(msg.find("unknown model 'resnet-18'; known: cnn, mlp, wrn-16-4"),
            std::string::npos)
      << msg;
  expect_error<std::invalid_argument>([] { m::model_info("wrn-16"); },
                                      "unknown model 'wrn-16'");
}

TEST(Registry, BadDepthOrOptionNamesIt) {
  expect_error<std::invalid_argument>(
      [] { m::model_info("wrn-17-4"); },
      "depth must be 6n + 4 with n >= 1, got 17");
  expect_error<std::invalid_argument>(
      [] { m::make_model("cnn", m::ModelOptions().num_classes(-2)); },
      "num_classes must be >= 1, got -2");
}

TEST(Registry, InfoCountsMatchPublishedWithoutBuilding) {
  EXPECT_EQ(m::model_info("wrn-16-4").parameters, 2753818);
  EXPECT_EQ(m::model_info("wrn-40-4").parameters, 8961306);
  EXPECT_EQ(m::model_info("wrn-28-10").parameters, 36500378);
  EXPECT_EQ(m::model_info("nf-resnet-50").parameters, 25557048);
  EXPECT_EQ(m::model_info("nfnet-f0").parameters, 71489284);
  EXPECT_EQ(m::model_info("nfnet-f1").parameters, 132634256);
  EXPECT_EQ(m::model_info("NFNet-F3").parameters, 254924200);
  // Head for 10 classes instead of 1000: 3072·990 + 990 fewer.
  EXPECT_EQ(
      m::model_info("nfnet-f0", m::ModelOptions().num_classes(10)).parameters,
      71489284 - 3073 * 990);
}

TEST(Registry, DefaultsPerFamily) {
  auto cnn = m::model_info("cnn");
  EXPECT_EQ(cnn.in_channels, 1);
  EXPECT_EQ(cnn.image_size, 28);
  EXPECT_EQ(cnn.num_classes, 10);
  EXPECT_EQ(cnn.parameters, 26010);
  auto f0 = m::model_info("nfnet-f0");
  EXPECT_EQ(f0.num_classes, 1000);
  EXPECT_EQ(f0.image_size, 192);
  EXPECT_EQ(f0.family, "nfnet");
  EXPECT_FALSE(f0.summary.empty());
}

TEST(Registry, BuiltModelsAgreeWithInfo) {
  for (const char* name :
       {"cnn", "mlp", "wrn-16-4", "wrn-10-2", "feature-cnn"}) {
    auto opts = m::ModelOptions().num_classes(7);
    auto model = m::make_model(name, opts);
    const auto info = m::model_info(name, opts);
    EXPECT_EQ(m::count_parameters(*model), info.parameters) << name;
    EXPECT_EQ(model->num_classes(), 7) << name;
    auto x =
        torch::randn({2, info.in_channels, info.image_size, info.image_size});
    EXPECT_EQ(model->forward(x).sizes(), (std::vector<int64_t>{2, 7})) << name;
  }
}

TEST(Registry, CnnOnCifarShapedInput) {
  auto model =
      m::make_model("cnn", m::ModelOptions().in_channels(3).image_size(32));
  EXPECT_EQ(model->forward(torch::randn({1, 3, 32, 32})).size(1), 10);
}

TEST(Registry, SlowNfModelsBuildWithInfoCounts) {
  for (const char* name : {"nf-resnet-50", "nfnet-f0"}) {
    auto model = m::make_model(name);
    EXPECT_EQ(m::count_parameters(*model), m::model_info(name).parameters)
        << name;
  }
}

}  // namespace
