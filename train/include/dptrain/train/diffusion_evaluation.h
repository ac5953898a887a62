// How good is a synthetic data set (`dptrain diffusion evaluate`): train a
// classifier on the synthetic images only and test it on real images
// (downstream accuracy, per class too), and the Fréchet distance between
// synthetic and real features (FID) on one or two feature networks:
//   - pytorch-fid's InceptionV3 (fid_inception.h) from a weights file the
//     user supplies: the FID of papers;
//   - the built-in feature-cnn (feature_cnn.h), trained here on a PUBLIC data
//     set or loaded from its weights: NOT comparable with papers' FIDs, only
//     with other figures on the same feature weights.
// Everything here is post-processing of the synthetic data (non-private
// training on it costs no privacy), except that the real test split is read:
// the figures describe it, as every test accuracy does, and are not part of
// a private release.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dptrain/datasets/image_dataset.h"
#include "dptrain/datasets/transforms.h"
#include "dptrain/models/image_classifier.h"
#include "dptrain/train/classifier_trainer.h"

namespace dptrain::train {

/// Non-private minibatch training of a classifier (synthetic or public data
/// only): Adam, cross-entropy, a seeded shuffle per epoch, images
/// standardised by `stats`.
struct PlainTrainingOptions {
  std::int64_t epochs = 10;
  std::int64_t batch_size = 128;
  double lr = 1e-3;
  std::uint64_t seed = 0;
  /// Throws std::invalid_argument naming the flag (`prefix` + "epochs",
  /// "batch-size", "lr"), e.g. prefix "--" or "--feature-".
  void validate(const std::string& prefix = "--") const;
};

/// Trains `model` on `data` as `options` say, on `device`; after every epoch
/// calls `on_epoch(epoch)` (1-based) when given. Returns the mean training
/// loss of each epoch.
std::vector<double> train_classifier_plainly(
    models::ImageClassifier& model, const datasets::ImageDataset& data,
    const datasets::ChannelStats& stats, c10::Device device,
    const PlainTrainingOptions& options,
    const std::function<void(std::int64_t)>& on_epoch = nullptr);

/// What `dptrain diffusion evaluate` is asked for.
struct EvaluationRun {
  std::string synthetic;  ///< --synthetic S.h5: its "train" split is used
  std::string real;       ///< --real: a data set name or path; its "test" split
  /// --classes: the real classes the synthetic labels 0..k−1 stand for, in
  /// order (as `diffusion finetune --classes`); empty = all, unrelabelled.
  std::vector<std::int64_t> classes;
  std::string classifier = "cnn";  ///< --classifier: a registered model
  PlainTrainingOptions training;   ///< --epochs, --batch-size, --lr, --seed
  /// --validation-fraction: synthetic examples held out to pick the epoch
  /// whose test accuracy is reported (no real data chooses it); 0 = last.
  double validation_fraction = 0.1;

  /// FID on pytorch-fid's InceptionV3: --inception-weights (converted file).
  std::string inception_weights;
  /// FID on the built-in feature-cnn: its weights (--feature-weights), or a
  /// PUBLIC data set to train it on first (--feature-dataset, its "train"
  /// split, --feature-classes), saved to --save-feature-weights if given.
  std::string feature_weights;
  std::string feature_dataset;
  std::vector<std::int64_t> feature_classes;
  std::string save_feature_weights;
  PlainTrainingOptions feature_training{5, 128, 1e-3, 0};
  /// --fid-samples: at most this many images of each side (the first ones of
  /// a seeded shuffle); 0 = all.
  std::int64_t fid_samples = 0;

  std::string device = "cpu";
  std::string json;  ///< --json F: the summary, written atomically
};

/// Reads and checks everything first (std::invalid_argument naming the flag
/// or file: a missing split, synthetic labels beyond the real classes,
/// images of another shape, an unknown classifier, an output that is an
/// input), then trains the classifier on the synthetic split, tests it on
/// the real test split (classes kept and relabelled as --classes says), and
/// computes each FID asked for. Returns the summary JSON: downstream_accuracy,
/// per_class_accuracy, the epoch chosen and every epoch's accuracies,
/// fid_inception and/or fid_feature_cnn (absent when not asked), "fid" (the
/// Inception figure when there is one, else the feature-cnn's, with
/// "fid_network" naming it), the synthetic set's (epsilon, delta) from its
/// .json sidecar when present, and what is post-processing.
std::string run_diffusion_evaluation(const EvaluationRun& run);

}  // namespace dptrain::train
