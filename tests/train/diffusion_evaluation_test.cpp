// `dptrain diffusion evaluate` (train::run_diffusion_evaluation): downstream
// accuracy of a classifier trained on synthetic images and tested on real
// ones, FID on the feature-cnn, and every bad input with a message naming
// the flag or file.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "dptrain/datasets/hdf5_writer.h"
#include "dptrain/datasets/subsets.h"
#include "dptrain/models/registry.h"
#include "dptrain/train/diffusion_evaluation.h"
#include "error_helpers.h"
#include "temp_dir_test.h"

namespace dptrain::train {
namespace {

using test_support::expect_error;

// n images 28×28 of `classes` classes that a CNN separates at once: class c
// is a bright square in quadrant c on a dark, noisy background.
datasets::ImageDataset quadrants(std::int64_t n, std::int64_t classes,
                                 std::uint64_t seed) {
  torch::manual_seed(seed);
  auto images = torch::randint(0, 40, {n, 1, 28, 28}, torch::kLong);
  auto labels = torch::arange(n, torch::kLong).remainder(classes);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto c = labels[i].item<std::int64_t>();
    const auto r = (c / 2) * 14, col = (c % 2) * 14;
    images[i].narrow(1, r, 14).narrow(2, col, 14).add_(180);
  }
  return datasets::ImageDataset(images.to(torch::kUInt8), labels, classes);
}

class DiffusionEvaluation : public test_support::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    synthetic = path("synth.h5");
    real = path("real.h5");
    datasets::write_hdf5(synthetic, {{"train", quadrants(256, 2, 1)}});
    // The real set has four classes; --classes 2,3 keeps the two the
    // synthetic labels 0, 1 stand for.
    datasets::write_hdf5(
        real, {{"train", quadrants(64, 4, 2)}, {"test", quadrants(600, 4, 3)}});
    run.synthetic = synthetic;
    run.real = real;
    run.classes = {2, 3};
    run.training.epochs = 2;
    run.training.batch_size = 32;
    run.validation_fraction = 0.25;
  }
  std::string synthetic, real;
  EvaluationRun run;
};

TEST(PlainTraining, LearnsSeparableImages) {
  const auto data = quadrants(256, 4, 7);
  torch::manual_seed(0);
  auto model = models::make_model(
      "cnn", models::ModelOptions().num_classes(4).in_channels(1));
  PlainTrainingOptions options;
  options.epochs = 3;
  options.batch_size = 32;
  std::vector<std::int64_t> seen;
  const auto losses = train_classifier_plainly(
      *model, data, {{0.5}, {0.5}}, torch::kCPU, options,
      [&](std::int64_t epoch) { seen.push_back(epoch); });
  ASSERT_EQ(losses.size(), 3u);
  EXPECT_LT(losses.back(), losses.front());
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2, 3}));
  const auto result = evaluate_classifier(*model, quadrants(100, 4, 8),
                                          {{0.5}, {0.5}}, torch::kCPU);
  EXPECT_GE(result.accuracy, 0.95);
}

TEST(PlainTraining, RefusesBadOptionsByFlag) {
  PlainTrainingOptions o;
  o.epochs = 0;
  expect_error([&] { o.validate("--feature-"); }, "--feature-epochs must be");
  o = {};
  o.batch_size = 0;
  expect_error([&] { o.validate(); }, "--batch-size must be >= 1");
  o = {};
  o.lr = -1;
  expect_error([&] { o.validate(); }, "--lr must be finite and > 0");
}

TEST_F(DiffusionEvaluation, TrainsOnSyntheticAndTestsOnTheRealClasses) {
  // The sidecar `diffusion sample` writes: the synthetic set's (ε, δ).
  std::ofstream(synthetic + ".json") << R"({"epsilon": 7.5, "delta": 1e-5})";
  run.json = path("eval.json");
  const auto j = nlohmann::json::parse(run_diffusion_evaluation(run));
  EXPECT_GE(j["downstream_accuracy"].get<double>(), 0.95);
  EXPECT_EQ(j["num_classes"], 2);
  EXPECT_EQ(j["real_test_examples"], 300);  // classes 2 and 3 of 600
  EXPECT_EQ(j["synthetic_examples"], 256);
  ASSERT_EQ(j["per_class_accuracy"].size(), 2u);
  ASSERT_EQ(j["epoch_accuracies"].size(), 2u);
  const auto chosen = j["epoch_chosen"].get<int>();
  EXPECT_TRUE(chosen == 1 || chosen == 2);
  EXPECT_EQ(j["epoch_chosen_by"], "held-out synthetic validation accuracy");
  // The reported accuracy is the chosen epoch's test accuracy.
  EXPECT_EQ(j["downstream_accuracy"],
            j["epoch_accuracies"][chosen - 1]["test_accuracy"]);
  EXPECT_EQ(j["epsilon"], 7.5);
  EXPECT_TRUE(j["fid"].is_null());
  std::ifstream in(run.json);
  EXPECT_EQ(nlohmann::json::parse(in)["downstream_accuracy"],
            j["downstream_accuracy"]);
}

TEST_F(DiffusionEvaluation, FidOfASetWithItselfIsZeroAndOfAnotherIsNot) {
  // The feature-cnn trained on a public set (here the real file's "train"
  // split), then FID between synthetic and real test images.
  run.feature_dataset = real;
  run.feature_training.epochs = 1;
  run.feature_training.batch_size = 32;
  run.save_feature_weights = path("features.h5");
  run.training.epochs = 1;
  // Synthetic images identical to the real test images of classes 2, 3.
  const auto test = datasets::subset_by_classes(quadrants(600, 4, 3), {2, 3});
  const std::string same = path("same.h5");
  datasets::write_hdf5(same, {{"train", test}});
  run.synthetic = same;
  const auto a = nlohmann::json::parse(run_diffusion_evaluation(run));
  EXPECT_NEAR(a["fid_feature_cnn"].get<double>(), 0.0, 1e-6);
  EXPECT_EQ(a["fid_network"], "feature-cnn");

  // Other images, on the saved feature weights: a positive distance.
  run.synthetic = synthetic;
  run.feature_dataset.clear();
  run.feature_weights = run.save_feature_weights;
  run.save_feature_weights.clear();
  const auto b = nlohmann::json::parse(run_diffusion_evaluation(run));
  EXPECT_GT(b["fid_feature_cnn"].get<double>(), 1e-3);
  EXPECT_EQ(b["fid"], b["fid_feature_cnn"]);
}

TEST_F(DiffusionEvaluation, RefusesBadInputsByFlagOrFile) {
  auto r = run;
  r.synthetic = path("none.h5");
  expect_error([&] { run_diffusion_evaluation(r); },
               "--synthetic '" + path("none.h5") + "': no such file");
  r = run;
  r.classes = {3};  // one real class, two synthetic labels
  expect_error([&] { run_diffusion_evaluation(r); },
               "--synthetic has label 1, but --real with --classes has 1");
  r = run;
  r.classes = {2, 9};
  expect_error([&] { run_diffusion_evaluation(r); }, "--classes: ");
  r = run;
  r.json = synthetic;
  expect_error([&] { run_diffusion_evaluation(r); },
               "is the file of --synthetic");
  r = run;
  r.validation_fraction = 1.0;
  expect_error([&] { run_diffusion_evaluation(r); },
               "--validation-fraction must be in [0, 1)");
  r = run;
  r.classifier = "unet-small";
  expect_error([&] { run_diffusion_evaluation(r); },
               "--classifier 'unet-small' is not an image model");
  r = run;
  r.feature_weights = synthetic;
  r.feature_dataset = real;
  expect_error([&] { run_diffusion_evaluation(r); },
               "give --feature-weights or --feature-dataset, not both");
  r = run;
  r.save_feature_weights = path("f.h5");
  expect_error([&] { run_diffusion_evaluation(r); },
               "--save-feature-weights needs --feature-dataset");
  r = run;
  r.fid_samples = 1;
  expect_error([&] { run_diffusion_evaluation(r); }, "--fid-samples must be");
  // A real file without a test split.
  const std::string train_only = path("train_only.h5");
  datasets::write_hdf5(train_only, {{"train", quadrants(8, 2, 4)}});
  r = run;
  r.real = train_only;
  r.classes.clear();
  expect_error([&] { run_diffusion_evaluation(r); }, "has no \"test\" split");
  // Images of another size.
  const std::string small = path("small.h5");
  datasets::ImageDataset tiny(torch::zeros({4, 1, 8, 8}, torch::kUInt8),
                              torch::zeros({4}, torch::kLong), 2);
  datasets::write_hdf5(small, {{"train", tiny}});
  r = run;
  r.synthetic = small;
  expect_error([&] { run_diffusion_evaluation(r); },
               "--synthetic images are 1x8x8, --real's 1x28x28");
}

}  // namespace
}  // namespace dptrain::train
