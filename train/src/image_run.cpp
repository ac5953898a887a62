#include "dptrain/train/image_run.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <stdexcept>

#include "dptrain/datasets/dataset_info.h"
#include "dptrain/datasets/idx_reader.h"
#include "dptrain/datasets/subsets.h"
#include "dptrain/models/registry.h"

namespace dptrain::train {

ImageData load_image_data(const TrainConfig& config) {
  const std::string path =
      config.dataset == "fashion-mnist" ? datasets::kDefaultFashionMnistDir : config.dataset;
  ImageData data;
  data.train = datasets::load_dataset(path, "train");
  if (config.validation_fraction > 0) {
    const auto n_val = static_cast<std::int64_t>(
        std::llround(config.validation_fraction * static_cast<double>(data.train.size())));
    auto [train, val] =
        datasets::split_train_validation(data.train, n_val, config.seed.value_or(0));
    data.train = std::move(train);
    data.eval = std::move(val);
    data.eval_split = "validation";
  } else {
    data.eval = datasets::load_dataset(path, "test");
    data.eval_split = "test";
  }
  return data;
}

RunResult run_image_training(const TrainConfig& config) {
  config.validate();
  if (config.task != "classify") {
    throw std::invalid_argument("--task " + config.task +
                                ": only 'classify' is available in this build");
  }
  ImageData data = load_image_data(config);
  const auto options = models::ModelOptions()
                           .num_classes(data.train.num_classes())
                           .in_channels(data.train.shape()[0])
                           .image_size(data.train.shape()[1]);
  auto model = models::make_model(config.model, options);
  ClassifierTrainer trainer(model, config);
  RunResult run;
  run.fit = trainer.fit(data.train, &data.eval);
  auto summary = nlohmann::json::parse(summary_json(run.fit, config));
  summary["eval_split"] = data.eval_split;
  summary["train_examples"] = data.train.size();
  summary["eval_examples"] = data.eval.size();
  run.summary_json = summary.dump();
  return run;
}

}  // namespace dptrain::train
