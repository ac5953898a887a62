// Private training of an image classifier: Poisson sampling, per-example
// clipping by the engine, Gaussian noise once per logical step, an optimizer,
// EMA, the accountant, checkpoints and metrics. The C++ entry point behind
// `dptrain train`.
//
//   auto model = dptrain::models::make_model("cnn", {...});
//   TrainConfig config;  config.target_epsilon = 3;  config.epochs = 10;
//   ClassifierTrainer trainer(model, config);
//   FitResult r = trainer.fit(train_data, &test_data);
//   r.epsilon, r.test.accuracy, trainer.evaluate(other_data).accuracy
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dptrain/accountant/event.h"
#include "dptrain/datasets/image_dataset.h"
#include "dptrain/datasets/transforms.h"
#include "dptrain/models/image_classifier.h"
#include "dptrain/train/config.h"
#include "dptrain/train/private_loop.h"

namespace dptrain::train {

/// Accuracy of a model on a data set (public evaluation data).
struct EvalResult {
  std::int64_t count = 0;
  double loss = 0.0;                       ///< mean cross-entropy
  double accuracy = 0.0;                   ///< fraction correct
  std::vector<double> per_class_accuracy;  ///< NaN where a class has no example
  /// Per group id 0..G-1 when the data set has groups; NaN where empty.
  std::vector<double> per_group_accuracy;
};

/// The accuracy of `model` on `data`, in evaluation mode and without
/// gradients (the mode is restored afterwards): images standardised by
/// `stats`, in batches on `device`. Labels must be < model.num_classes().
EvalResult evaluate_classifier(models::ImageClassifier& model,
                               const datasets::ImageDataset& data,
                               const datasets::ChannelStats& stats,
                               c10::Device device);

/// One line of the per-epoch log.
struct EpochRecord {
  std::int64_t epoch = 0;  ///< 1-based
  std::int64_t step = 0;   ///< logical steps done
  /// Mean per-example training loss over the epoch's sampled examples.
  /// Computed from private data without noise: NOT PRIVATE (as in every DP
  /// library's training log); never publish it as part of a release.
  double train_loss = 0.0;
  double train_accuracy = 0.0;  ///< also NOT PRIVATE
  EvalResult test;              ///< last iterate on the evaluation data
  EvalResult ema_test;          ///< EMA parameters (count 0 when no EMA)
  EvalResult polyak_test;  ///< Polyak average (count 0 when off or not started)
  double epsilon = 0.0;    ///< spent so far, at the run's delta
  double seconds = 0.0;    ///< wall time since fit() started
};

/// What fit() did: the privacy side (LoopResult: steps over all sessions,
/// q, σ, ε by the configured accountant and by RDP and PRV, δ, whether the
/// budget stopped the run, notes, wall time) and the evaluations.
struct FitResult : LoopResult {
  EvalResult test;
  EvalResult ema_test;
  EvalResult
      polyak_test;  ///< count 0 when Polyak averaging is off or not started
  std::vector<EpochRecord> epochs;
};

/// Trains `model` privately as `config` says (config.model and
/// config.dataset are not read: the caller built both).
class ClassifierTrainer {
 public:
  /// Checks the model (dp::UnsupportedLayerError listing every module
  /// without a rule); a TrainConfig passed here is validated on the way in
  /// (std::invalid_argument naming the flag).
  ClassifierTrainer(std::shared_ptr<models::ImageClassifier> model,
                    ValidConfig config);
  ~ClassifierTrainer();
  ClassifierTrainer(const ClassifierTrainer&) = delete;
  ClassifierTrainer& operator=(const ClassifierTrainer&) = delete;

  /// Trains on `train` (privately), evaluating on `eval` after every epoch
  /// when given. With config.resume, continues from config.checkpoint.
  /// Throws std::invalid_argument for a batch larger than the data set, a
  /// model/data mismatch, or a checkpoint of another run.
  FitResult fit(const datasets::ImageDataset& train,
                const datasets::ImageDataset* eval = nullptr);

  /// Which parameters to evaluate: the last iterate or one of its averages
  /// (post-processing of private iterates: no privacy cost).
  enum class Iterate { kLast, kEma, kPolyak };
  /// Evaluates `which` parameters on `data`, in evaluation mode, without
  /// gradients; an average that is off falls back to the last iterate. The
  /// model holds the last iterate again afterwards, also on an exception.
  EvalResult evaluate(const datasets::ImageDataset& data,
                      Iterate which = Iterate::kLast);
  /// evaluate(data, use_ema ? kEma : kLast).
  EvalResult evaluate(const datasets::ImageDataset& data, bool use_ema);

  /// Writes the current weights (or the EMA's, when `use_ema` and EMA is
  /// on) with models::save_weights: format by extension (.h5/.hdf5, .pt/.pth),
  /// replaced atomically. Returns false (writing nothing) when `use_ema` is
  /// asked but there is no EMA.
  bool save_weights(const std::string& path, bool use_ema = false);

  /// ε spent so far at config.delta by config.accountant (PRV: upper bound).
  double epsilon() const;
  /// The privacy events of all steps taken, as the accountant composes them.
  const accountant::EventHistory& privacy_history() const;

  /// Called after each epoch (after logging); for progress reporting.
  std::function<void(const EpochRecord&)> on_epoch;
  /// Prints the per-epoch lines and notes (default: standard output).
  std::function<void(const std::string&)> log = nullptr;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// The images of `data` as float32 inputs: x/255 standardised by the
/// data-independent constants of `dataset_name` (public values for the known
/// data sets; otherwise (x − 0.5)/0.5). Never computed from private data.
struct InputNormalization {
  std::vector<double> mean;
  std::vector<double> std;
};
InputNormalization input_normalization(const std::string& dataset_name,
                                       std::int64_t channels);

/// What a resumed image run must find again (PrivateTask::data_fingerprint):
/// the examples, shape, classes, config.classes and CRC-32s of the image and
/// label bytes, as a JSON object text.
std::string image_data_fingerprint(const datasets::ImageDataset& data,
                                   const TrainConfig& config);

/// The run's summary as one JSON object (the `--summary` file and the last
/// line printed): test_accuracy, ema_test_accuracy, epsilon, delta,
/// noise_multiplier, sample_rate, steps, accountant, per_class_accuracy,
/// wall_seconds, and more.
std::string summary_json(const FitResult& result, const TrainConfig& config);

}  // namespace dptrain::train
