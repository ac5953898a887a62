// Fine-tuning an image model from a `dptrain train` config: weights from
// --init-checkpoint, a fresh head with --reset-classifier, --trainable, and
// --save-weights after training.
#include "dptrain/train/image_run.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "dptrain/models/registry.h"
#include "dptrain/models/weights.h"
#include "error_helpers.h"
#include "temp_dir_test.h"

namespace dptrain::train {
namespace {

namespace fs = std::filesystem;
using dptrain::test_support::error_of;

// n random 1x12x12 images with labels in [0, classes).
datasets::ImageDataset random_data(std::int64_t n, std::int64_t classes) {
  torch::manual_seed(3);
  auto images =
      torch::randint(0, 256, {n, 1, 12, 12}, torch::kLong).to(torch::kUInt8);
  auto labels = torch::arange(n, torch::kLong).remainder(classes);
  return datasets::ImageDataset(images, labels, classes, {}, "toy");
}

std::shared_ptr<models::ImageClassifier> mlp(std::int64_t classes) {
  return models::make_model(
      "mlp",
      models::ModelOptions().num_classes(classes).in_channels(1).image_size(
          12));
}

class ImageFineTuning : public dptrain::test_support::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    torch::manual_seed(7);
    source_ = mlp(5);  // "pre-trained" on 5 classes
    models::save_weights(*source_, path("pretrained.pt"));
    config_.dataset = "toy";
    config_.model = "mlp";
    config_.noise_multiplier = 1.0;
    config_.steps = 2;
    config_.batch_size = 16;
    config_.seed = 1;
    config_.init_checkpoint = path("pretrained.pt");
  }
  std::shared_ptr<models::ImageClassifier> source_;
  TrainConfig config_;
};

TEST_F(ImageFineTuning, LoadsTheBodyAndStartsAFreshHeadForOtherClasses) {
  config_.reset_classifier = true;
  config_.trainable = "classifier";
  const auto model = build_image_model(config_, random_data(30, 3));
  const auto source = source_->named_parameters();
  for (const auto& p : model->named_parameters()) {
    const bool head = p.key().rfind("classifier.", 0) == 0;
    EXPECT_EQ(p.value().requires_grad(), head) << p.key();
    if (head) {
      EXPECT_EQ(p.value().size(0), 3) << p.key();
    } else {
      EXPECT_TRUE(torch::equal(p.value(), source[p.key()])) << p.key();
    }
  }
}

TEST_F(ImageFineTuning, SeedMakesTheInitialisationReproducible) {
  // --seed covers the model's initialisation, not only sampling and noise.
  config_.init_checkpoint = "";
  torch::manual_seed(100);
  const auto a = build_image_model(config_, random_data(30, 3));
  torch::manual_seed(200);  // whatever the global generator held before
  const auto b = build_image_model(config_, random_data(30, 3));
  config_.seed = 2;
  const auto c = build_image_model(config_, random_data(30, 3));
  const auto pb = b->named_parameters();
  const auto pc = c->named_parameters();
  bool other_seed_differs = false;
  for (const auto& p : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
    other_seed_differs |= !torch::equal(p.value(), pc[p.key()]);
  }
  EXPECT_TRUE(other_seed_differs);
}

TEST_F(ImageFineTuning, AHeadOfOtherClassesWithoutResetIsRefusedByName) {
  const auto what = error_of<std::invalid_argument>(
      [&] { build_image_model(config_, random_data(30, 3)); });
  EXPECT_NE(what.find("--init-checkpoint: "), std::string::npos) << what;
  EXPECT_NE(what.find("classifier.weight"), std::string::npos) << what;
  EXPECT_NE(what.find("add --reset-classifier"), std::string::npos) << what;
}

TEST_F(ImageFineTuning, SameClassesLoadEverything) {
  const auto model = build_image_model(config_, random_data(30, 5));
  const auto source = source_->named_parameters();
  for (const auto& p : model->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), source[p.key()])) << p.key();
    EXPECT_TRUE(p.value().requires_grad()) << p.key();
  }
}

TEST_F(ImageFineTuning, ATrainablePatternMatchingNothingIsRefused) {
  config_.init_checkpoint.clear();
  config_.trainable = "no_such_layer";
  const auto what = error_of<std::invalid_argument>(
      [&] { build_image_model(config_, random_data(30, 5)); });
  EXPECT_EQ(what.rfind("--trainable: ", 0), 0u) << what;
  EXPECT_NE(what.find("no_such_layer"), std::string::npos) << what;
}

TEST_F(ImageFineTuning,
       SavedWeightsAreTheTrainedOnesAndTheEmaIsSavedSeparately) {
  config_.reset_classifier = true;
  config_.ema_decay = 0.9;
  const auto data = random_data(64, 3);
  auto model = build_image_model(config_, data);
  ClassifierTrainer trainer(model, config_);
  trainer.log = [](const std::string&) {};
  trainer.fit(data);
  ASSERT_TRUE(trainer.save_weights(path("last.h5")));
  ASSERT_TRUE(trainer.save_weights(path("ema.h5"), /*use_ema=*/true));
  auto last = mlp(3);
  auto ema = mlp(3);
  models::load_weights(*last, path("last.h5"));
  models::load_weights(*ema, path("ema.h5"));
  const auto ema_params = ema->named_parameters();
  const auto trained_params = model->named_parameters();
  bool ema_differs = false;
  for (const auto& p : last->named_parameters()) {
    const auto& trained = trained_params[p.key()];
    EXPECT_TRUE(torch::allclose(p.value(), trained))
        << p.key();  // saved as float32
    ema_differs = ema_differs || !torch::allclose(ema_params[p.key()], trained);
  }
  EXPECT_TRUE(ema_differs);  // and the model holds the last iterate again
  // No temporary files are left beside the outputs.
  for (const auto& entry : fs::directory_iterator(dir())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos)
        << entry.path();
  }
}

TEST_F(ImageFineTuning, SaveEmaWithoutEmaWritesNothing) {
  config_.reset_classifier = true;
  const auto data = random_data(64, 3);
  ClassifierTrainer trainer(build_image_model(config_, data), config_);
  trainer.log = [](const std::string&) {};
  trainer.fit(data);
  EXPECT_FALSE(trainer.save_weights(path("ema.pt"), /*use_ema=*/true));
  EXPECT_FALSE(fs::exists(path("ema.pt")));
}

TEST_F(ImageFineTuning, PolyakAverageIsEvaluatedAndSummarised) {
  config_.init_checkpoint.clear();
  config_.polyak_start = 1;
  config_.steps = 3;
  const auto data = random_data(64, 5);
  ClassifierTrainer trainer(build_image_model(config_, data), config_);
  trainer.log = [](const std::string&) {};
  const auto result = trainer.fit(data, &data);
  EXPECT_EQ(result.polyak_test.count, 64);
  const auto summary = summary_json(result, config_);
  EXPECT_NE(summary.find("\"polyak_test_accuracy\":"), std::string::npos);
  EXPECT_EQ(summary.find("\"polyak_test_accuracy\":null"), std::string::npos);
}

TEST(TrainConfigFineTuning, FlagsAreCheckedByName) {
  TrainConfig c;
  c.noise_multiplier = 1;
  c.steps = 1;
  c.reset_classifier = true;
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              c.validate();
            }).find("--reset-classifier needs --init-checkpoint"),
            std::string::npos);
  c.reset_classifier = false;
  c.classes = {5, 6, 5};
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              c.validate();
            }).find("--classes must not repeat a class, got 5"),
            std::string::npos);
  c.classes = {};
  c.trainable = "";
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              c.validate();
            }).find("--trainable"),
            std::string::npos);
  c.trainable = "classifier";
  c.task = "lm";
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              c.validate();
            }).find("--trainable and --classes need --task classify"),
            std::string::npos);
}

}  // namespace
}  // namespace dptrain::train
