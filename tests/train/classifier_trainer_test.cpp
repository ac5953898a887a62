// End-to-end tests of private training on small synthetic data: learning,
// resume equality, the budget stop, checkpoint refusal, non-Poisson notes.
#include "dptrain/train/classifier_trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dptrain/accountant/rdp_accountant.h"
#include "dptrain/models/small_models.h"
#include "error_helpers.h"
#include "temp_dir_test.h"

namespace dptrain::train {
namespace {

namespace fs = std::filesystem;

// Two well-separated classes of 1x12x12 images: class 0 bright on the left
// half, class 1 on the right half, plus noise.
datasets::ImageDataset toy_data(std::int64_t n, std::uint64_t seed) {
  torch::manual_seed(static_cast<std::uint64_t>(seed));
  auto labels = torch::randint(0, 2, {n}, torch::kLong);
  auto images = torch::randint(0, 60, {n, 1, 12, 12}, torch::kLong);
  auto left = (labels == 0).view({n, 1, 1, 1});
  auto bright = torch::full({n, 1, 12, 6}, 150, torch::kLong);
  images.narrow(3, 0, 6).add_(bright * left);
  images.narrow(3, 6, 6).add_(bright * left.logical_not());
  return datasets::ImageDataset(images.to(torch::kUInt8), labels, 2, {}, "toy");
}

std::shared_ptr<models::ImageClassifier> toy_model(std::uint64_t seed) {
  torch::manual_seed(seed);
  return models::Mlp(
             models::MlpOptions().num_classes(2).image_size(12).hidden({16}))
      .ptr();
}

TrainConfig toy_config() {
  TrainConfig c;
  c.dataset = "toy";
  c.noise_multiplier = 1.0;
  c.max_grad_norm = 1.0;
  c.batch_size = 64;
  c.max_physical_batch_size = 40;  // forces several physical chunks
  c.steps = 6;
  c.lr = 0.5;
  c.momentum = 0.5;
  c.seed = 11;
  return c;
}

class Trainer : public dptrain::test_support::TempDirTest {
 protected:
  static void quiet(ClassifierTrainer& t) {
    t.log = [](const std::string&) {};
  }
  // The toy config with two steps checkpointed to `name`, after one run of it
  // on `train` (the checkpoint a resumed run then finds).
  TrainConfig two_steps_checkpointed_to(const std::string& name,
                                        const datasets::ImageDataset& train) {
    auto config = toy_config();
    config.steps = 2;
    config.checkpoint = path(name);
    ClassifierTrainer first(toy_model(1), config);
    quiet(first);
    first.fit(train);
    return config;
  }
};

TEST_F(Trainer, LearnsSeparableDataAndReportsEpsilon) {
  const auto train = toy_data(512, 1);
  const auto test = toy_data(256, 2);
  auto config = toy_config();
  config.steps = 40;
  config.ema_decay = 0.9;
  ClassifierTrainer trainer(toy_model(3), config);
  quiet(trainer);
  const auto r = trainer.fit(train, &test);
  EXPECT_EQ(r.steps, 40);
  EXPECT_GT(r.test.accuracy, 0.9);
  EXPECT_GT(r.ema_test.accuracy, 0.9);
  ASSERT_EQ(r.test.per_class_accuracy.size(), 2U);
  // ε is what an independent accountant gives for (q, σ, T).
  accountant::RdpAccountant rdp;
  rdp.compose({64.0 / 512.0, 1.0, 40});
  EXPECT_DOUBLE_EQ(r.epsilon, rdp.get_epsilon(1e-5).epsilon);
  EXPECT_DOUBLE_EQ(trainer.epsilon(), r.epsilon);
  EXPECT_TRUE(r.privacy_note.empty());
}

TEST_F(Trainer, ResumedRunEqualsUninterruptedRun) {
  const auto train = toy_data(256, 1);
  auto config = toy_config();
  config.ema_decay = 0.5;
  config.augmult = 2;  // the augmentation generator must be restored too

  auto full_model = toy_model(5);
  ClassifierTrainer full(full_model, config);
  quiet(full);
  full.fit(train);

  auto part_config = config;
  part_config.steps = 3;
  part_config.checkpoint = path("run.ckpt");
  auto first_model = toy_model(5);
  ClassifierTrainer first(first_model, part_config);
  quiet(first);
  first.fit(train);

  auto resume_config = config;
  resume_config.checkpoint = path("run.ckpt");
  resume_config.resume = true;
  auto resumed_model =
      toy_model(99);  // different init: everything must come from the file
  ClassifierTrainer resumed(resumed_model, resume_config);
  quiet(resumed);
  const auto r = resumed.fit(train);
  EXPECT_EQ(r.steps, 6);
  EXPECT_EQ(accountant::total_steps(resumed.privacy_history()), 6);
  const auto a = full_model->parameters();
  const auto b = resumed_model->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  }
  EXPECT_DOUBLE_EQ(resumed.epsilon(), full.epsilon());
}

TEST_F(Trainer, ResumeWithOtherDataOfTheSameSizeIsRefused) {
  auto config = toy_config();
  config.steps = 2;
  config.checkpoint = path("run.ckpt");
  ClassifierTrainer first(toy_model(5), config);
  quiet(first);
  first.fit(toy_data(256, 1));
  config.resume = true;
  config.steps = 4;
  ClassifierTrainer other(toy_model(5), config);
  quiet(other);
  const auto message = test_support::error_of<std::invalid_argument>(
      [&] { other.fit(toy_data(256, 2)); });
  EXPECT_NE(message.find("belongs to another run"), std::string::npos)
      << message;
  EXPECT_NE(message.find("crc32_images"), std::string::npos) << message;
}

TEST_F(Trainer, AnEvaluationSetOfAnotherShapeIsRefusedBeforeTraining) {
  auto config = toy_config();
  config.checkpoint = path("run.ckpt");
  ClassifierTrainer trainer(toy_model(5), config);
  quiet(trainer);
  torch::manual_seed(1);
  const datasets::ImageDataset other(
      torch::randint(0, 255, {8, 1, 10, 10}, torch::kLong).to(torch::kUInt8),
      torch::zeros({8}, torch::kLong), 2, {}, "toy");
  EXPECT_EQ(test_support::error_of<std::invalid_argument>(
                [&] { trainer.fit(toy_data(128, 1), &other); }),
            "the evaluation images have shape [1, 10, 10], the training images "
            "[1, 12, 12] "
            "(train and test of --dataset must match)");
  EXPECT_FALSE(fs::exists(path("run.ckpt")));  // nothing was spent
}

TEST_F(Trainer, StopsBeforeExceedingTargetEpsilon) {
  const auto train = toy_data(256, 1);
  auto config = toy_config();
  config.noise_multiplier = 0;
  config.target_epsilon = 2.0;
  config.steps = 4;  // σ is calibrated so that 4 steps fit in ε = 2
  config.checkpoint = path("budget.ckpt");
  ClassifierTrainer first(toy_model(1), config);
  quiet(first);
  const auto r1 = first.fit(train);
  EXPECT_FALSE(r1.stopped_by_budget);
  EXPECT_LE(r1.epsilon, 2.0);

  // Asking for more steps with the same budget: the run keeps its σ and stops.
  config.steps = 40;
  config.resume = true;
  ClassifierTrainer second(toy_model(1), config);
  std::string log;
  second.log = [&](const std::string& line) { log += line + "\n"; };
  const auto r2 = second.fit(train);
  EXPECT_TRUE(r2.stopped_by_budget);
  EXPECT_LE(r2.epsilon, 2.0);
  EXPECT_LT(r2.steps, 40);
  EXPECT_NE(log.find("would take epsilon past the target"), std::string::npos)
      << log;
  // One more step would indeed have exceeded the target.
  accountant::RdpAccountant rdp;
  auto history = second.privacy_history();
  accountant::append_event(history, {history.back().sample_rate,
                                     history.back().noise_multiplier, 1});
  rdp.set_history(history);
  EXPECT_GT(rdp.get_epsilon(config.delta).epsilon, 2.0);
}

TEST_F(Trainer, RefusesCheckpointOfAnotherRun) {
  const auto train = toy_data(256, 1);
  auto config = two_steps_checkpointed_to("a.ckpt", train);

  config.max_grad_norm = 2.0;  // a different privacy setting
  config.resume = true;
  ClassifierTrainer second(toy_model(1), config);
  quiet(second);
  try {
    second.fit(train);
    FAIL() << "expected a refusal";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to another run"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(Trainer, RefusesCheckpointOfAnotherModelWithoutHalfLoading) {
  const auto train = toy_data(256, 1);
  auto config = two_steps_checkpointed_to("m.ckpt", train);

  config.resume = true;
  torch::manual_seed(4);
  auto other =
      models::Mlp(
          models::MlpOptions().num_classes(2).image_size(12).hidden({8}))
          .ptr();
  std::vector<torch::Tensor> before;
  for (const auto& p : other->parameters())
    before.push_back(p.detach().clone());
  ClassifierTrainer second(other, config);
  quiet(second);
  try {
    second.fit(train);
    FAIL() << "expected a refusal";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("nothing was loaded"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos)
        << e.what();
  }
  const auto after = other->parameters();
  for (std::size_t i = 0; i < before.size(); ++i)
    EXPECT_TRUE(torch::equal(before[i], after[i]));
}

TEST_F(Trainer, BatchLargerThanDataSetIsRefused) {
  auto config = toy_config();
  config.batch_size = 1000;
  ClassifierTrainer trainer(toy_model(1), config);
  quiet(trainer);
  try {
    trainer.fit(toy_data(100, 1));
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "--batch-size 1000 is larger than the training set (100"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(Trainer, ShuffledSamplerSaysTheAccountantDoesNotCoverIt) {
  auto config = toy_config();
  config.sampler = "shuffle";
  config.steps = 2;
  ClassifierTrainer trainer(toy_model(1), config);
  std::string log;
  trainer.log = [&](const std::string& line) { log += line + "\n"; };
  const auto r = trainer.fit(toy_data(128, 1));
  EXPECT_FALSE(r.privacy_note.empty());
  EXPECT_NE(log.find("WARNING"), std::string::npos);
  const auto summary = nlohmann::json::parse(summary_json(r, config));
  EXPECT_EQ(summary.at("privacy_note").get<std::string>(), r.privacy_note);
}

TEST_F(Trainer, SummaryHasTheDocumentedKeys) {
  const auto train = toy_data(128, 1);
  auto config = toy_config();
  config.steps = 2;
  ClassifierTrainer trainer(toy_model(1), config);
  quiet(trainer);
  const auto r = trainer.fit(train, &train);
  const auto j = nlohmann::json::parse(summary_json(r, config));
  for (const char* key : {"test_accuracy", "ema_test_accuracy", "epsilon",
                          "delta", "noise_multiplier", "sample_rate", "steps",
                          "accountant", "per_class_accuracy", "wall_seconds"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.at("steps").get<int>(), 2);
  EXPECT_DOUBLE_EQ(j.at("sample_rate").get<double>(), 64.0 / 128.0);
}

TEST_F(Trainer, AValidationSplitIsNeverCalledTest) {
  // --validation-fraction evaluates on private data without noise: the log,
  // the metrics and the summary say so, and no key says "test".
  const auto train = toy_data(128, 1);
  auto config = toy_config();
  config.steps = 2;
  config.validation_fraction = 0.2;
  config.metrics = path("m.jsonl");
  ClassifierTrainer trainer(toy_model(1), config);
  std::string log;
  trainer.log = [&](const std::string& line) { log += line + "\n"; };
  const auto r = trainer.fit(train, &train);
  EXPECT_NE(log.find("validation (private, not noised) acc"), std::string::npos)
      << log;
  EXPECT_EQ(log.find("test acc"), std::string::npos) << log;
  const auto j = nlohmann::json::parse(summary_json(r, config));
  EXPECT_TRUE(j.contains("validation_accuracy"));
  EXPECT_NE(j.at("validation_note")
                .get<std::string>()
                .find("validation (private, not noised)"),
            std::string::npos);
  std::ifstream metrics(path("m.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(metrics, line));
  EXPECT_EQ(line.find("test"), std::string::npos) << line;
  EXPECT_NE(line.find("validation_accuracy"), std::string::npos) << line;
  for (const auto& [key, value] : j.items()) {
    EXPECT_EQ(key.find("test"), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace dptrain::train
