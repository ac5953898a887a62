#include "dptrain/train/image_run.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "dptrain/datasets/dataset_info.h"
#include "dptrain/datasets/idx_reader.h"
#include "dptrain/datasets/subsets.h"
#include "dptrain/models/fine_tuning.h"
#include "dptrain/models/registry.h"
#include "dptrain/models/weights.h"
#include "dptrain/train/outputs.h"

namespace dptrain::train {

datasets::ImageFolderOptions image_folder_options(const TrainConfig& config) {
  datasets::ImageFolderOptions images;
  if (!config.image_size.empty()) {
    images.height = config.image_size[0];
    images.width = config.image_size[1];
  }
  return images;
}

datasets::AugmentOptions augment_options(const TrainConfig& config) {
  datasets::AugmentOptions augment;
  augment.random_resized_crop = config.augment_crop == "random-resized";
  augment.scale_min = config.crop_scale_min;
  return augment;
}

ImageData load_image_data(const TrainConfig& config) {
  const std::string path = datasets::resolve_dataset_path(config.dataset);
  ImageData data;
  const auto images = image_folder_options(config);
  data.train = datasets::load_dataset(path, "train", images);
  if (config.validation_fraction > 0) {
    const auto n_val = static_cast<std::int64_t>(std::llround(
        config.validation_fraction * static_cast<double>(data.train.size())));
    auto [train, val] = datasets::split_train_validation(
        data.train, n_val, config.seed.value_or(0));
    data.train = std::move(train);
    data.eval = std::move(val);
    data.eval_split = "validation (private, not noised)";
  } else {
    // "test", else an image folder's "val" (ImageNet's layout).
    const auto splits = datasets::list_splits(path);
    const bool has_val =
        std::find(splits.begin(), splits.end(), "test") == splits.end() &&
        std::find(splits.begin(), splits.end(), "val") != splits.end();
    data.eval_split = has_val ? "val" : "test";
    data.eval = datasets::load_dataset(path, data.eval_split, images);
  }
  if (!config.classes.empty()) {
    try {
      data.train = datasets::subset_by_classes(data.train, config.classes);
      data.eval = datasets::subset_by_classes(data.eval, config.classes);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("--classes: " + std::string(e.what()));
    }
  }
  return data;
}

std::shared_ptr<models::ImageClassifier> build_image_model(
    const TrainConfig& config, const datasets::ImageDataset& train) {
  const auto options = models::ModelOptions()
                           .num_classes(train.num_classes())
                           .in_channels(train.shape()[0])
                           .image_size(train.shape()[1]);
  // --seed covers the initialisation too: a seeded run is reproducible whole.
  if (config.seed) torch::manual_seed(*config.seed);
  auto model = models::make_model(config.model, options);
  if (!config.init_checkpoint.empty()) {
    models::LoadOptions load;
    if (config.reset_classifier) load.exclude = "^classifier\\.";
    try {
      models::load_weights(*model, config.init_checkpoint, load);
    } catch (const std::invalid_argument& e) {
      std::string hint;
      if (!config.reset_classifier &&
          std::string(e.what()).find("classifier.") != std::string::npos) {
        hint =
            " (a head for another number of classes? add --reset-classifier)";
      }
      throw std::invalid_argument(
          "--init-checkpoint: " + std::string(e.what()) + hint);
    }
  }
  try {
    models::FineTuneOptions tune;
    tune.trainable = config.trainable;
    models::prepare_fine_tuning(*model, tune);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--trainable: " + std::string(e.what()));
  }
  return model;
}

RunResult run_image_training(const TrainConfig& raw_config) {
  const ValidConfig valid(raw_config);
  const TrainConfig& config = *valid;
  if (config.task != "classify") {
    throw std::invalid_argument("--task " + config.task +
                                ": only 'classify' is available in this build");
  }
  check_outputs(config);  // before anything is read or spent
  ImageData data = load_image_data(config);
  auto model = build_image_model(config, data.train);
  ClassifierTrainer trainer(model, valid);
  RunResult run;
  run.fit = trainer.fit(data.train, &data.eval);
  if (!config.save_weights.empty()) {
    trainer.save_weights(config.save_weights);
    trainer.save_weights(ema_weights_path(config.save_weights),
                         /*use_ema=*/true);
  }
  auto summary = nlohmann::json::parse(summary_json(run.fit, config));
  summary["eval_split"] = data.eval_split;
  summary["train_examples"] = data.train.size();
  summary["eval_examples"] = data.eval.size();
  run.summary_json = summary.dump();
  return run;
}

}  // namespace dptrain::train
