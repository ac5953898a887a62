// One image-classification run from a TrainConfig: load the data set, build
// the model by name, train privately, evaluate. What `dptrain train` calls.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "dptrain/datasets/image_dataset.h"
#include "dptrain/datasets/image_folder.h"
#include "dptrain/datasets/transforms.h"
#include "dptrain/models/image_classifier.h"
#include "dptrain/train/classifier_trainer.h"
#include "dptrain/train/config.h"

namespace dptrain::train {

/// How image folders and CSV lists load under `config` (its image_size).
datasets::ImageFolderOptions image_folder_options(const TrainConfig& config);

/// The augmentation of the views under `config` (--augment-crop,
/// --crop-scale-min; flips always).
datasets::AugmentOptions augment_options(const TrainConfig& config);

/// The training and evaluation sets a config names. `config.dataset` is
/// "fashion-mnist" (Debian's package) or a path (IDX or CIFAR folder, HDF5
/// file, image folder or CSV list of images; evaluation on "test", else an
/// image folder's "val"). With validation_fraction > 0 the evaluation set is
/// carved from the training set (seeded by config.seed, or 0) and the test
/// split is unused. With config.classes, both sets keep those classes only,
/// relabelled.
struct ImageData {
  datasets::ImageDataset train;
  datasets::ImageDataset eval;
  std::string eval_split;  ///< "test", "val" or "validation ..."
};
ImageData load_image_data(const TrainConfig& config);

/// config.model for `train`'s shape and classes, prepared for fine-tuning as
/// the config says: weights from config.init_checkpoint (all-or-nothing; the
/// head's tensors skipped with config.reset_classifier, which starts a fresh
/// head), then only config.trainable's parameters left trainable. Throws
/// std::invalid_argument naming the flag or file (a mis-shaped head without
/// --reset-classifier, a pattern matching nothing, ...).
std::shared_ptr<models::ImageClassifier> build_image_model(
    const TrainConfig& config, const datasets::ImageDataset& train);

struct RunResult {
  FitResult fit;
  std::string summary_json;
};

/// Validates the config, loads data, builds config.model, trains, and returns
/// the result with its summary JSON (which names the evaluation split).
RunResult run_image_training(const TrainConfig& config);

}  // namespace dptrain::train
