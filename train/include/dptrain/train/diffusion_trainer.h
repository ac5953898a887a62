// Diffusion models as the third task of the private loop (issue 15): private
// fine-tuning of a class-conditional UNet with the EDM loss (`dptrain
// diffusion finetune`), the non-private pre-training of the same model on
// public data (`dptrain diffusion pretrain`), and the summaries of both.
//
// The privacy unit is one training example. Each sampled example is repeated
// K = noise_multiplicity times (times augmult views when augmult > 0); every
// row gets its own σ, noise and label dropout, and the engine clips the mean
// of the unit's K·views row losses as ONE gradient (DPDM's noise
// multiplicity). Images are scaled from uint8 to [-1, 1] (x/127.5 − 1), the
// range EDM's σ_data = 0.5 assumes; samples are mapped back the same way.
//
// Sampling from the released weights, and anything done with the samples
// (training a classifier, tuning its hyper-parameters), is post-processing:
// it carries the fine-tuning run's (ε, δ) and costs no further privacy.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dptrain/datasets/image_dataset.h"
#include "dptrain/models/diffusion.h"
#include "dptrain/models/unet.h"
#include "dptrain/train/config.h"
#include "dptrain/train/private_loop.h"

namespace dptrain::train {

/// uint8 images [N, C, H, W] → `dtype` in [-1, 1] (x/127.5 − 1).
at::Tensor to_diffusion_range(const at::Tensor& images,
                              c10::ScalarType dtype = c10::ScalarType::Float);
/// float images in [-1, 1] → uint8 (clamped, rounded): the inverse map.
at::Tensor from_diffusion_range(const at::Tensor& images);

/// What the rows of the EDM loss draw: σ ~ exp(N(p_mean, p_std²)), noise
/// N(0, 1) per pixel, and the null class with probability label_dropout.
struct DiffusionDraws {
  models::EdmOptions edm;
  double label_dropout = 0.1;
};
/// The parameterization named by --diffusion-objective ("edm" or "v");
/// std::invalid_argument naming the flag otherwise.
models::Parameterization diffusion_objective(const std::string& name);

/// edm, label_dropout from config (edm_p_mean, edm_p_std, sigma_data,
/// diffusion_objective, sigma_distribution, high_noise_weight).
DiffusionDraws diffusion_draws(const TrainConfig& config);

/// One draw per row: sigma [R], noise [R, C, H, W], drop_label bool [R].
struct RowDraws {
  at::Tensor sigma, noise, drop_label;
  /// Rows first … first+count−1 (one unit's rows).
  RowDraws rows(std::int64_t first, std::int64_t count) const;
};

/// The draws of R rows of images shaped `image_shape` ([C, H, W]) in
/// `options`' dtype and device, all from one CPU generator seeded by one
/// number of `rng`: `rng`'s state alone fixes them, on any device.
RowDraws draw_rows(std::int64_t rows, at::IntArrayRef image_shape,
                   const DiffusionDraws& draws, std::mt19937_64& rng,
                   const at::TensorOptions& options);

/// Per-row EDM losses [R] of images x ([R, C, H, W] in [-1, 1], on the
/// model's device) with labels [R], each row at its own σ and noise, its
/// label replaced by the null class where drop_label is set.
at::Tensor edm_row_losses(models::UNet& net, const at::Tensor& x,
                          const at::Tensor& labels, const RowDraws& draws,
                          const models::EdmOptions& edm);

/// The rows of a chunk of units and the task that computes their losses are
/// built by make_diffusion_task; this is its per-row half:
/// edm_row_losses(x, labels, draw_rows(R, ...)).
at::Tensor diffusion_row_losses(models::UNet& net, const at::Tensor& x,
                                const at::Tensor& labels,
                                const DiffusionDraws& draws,
                                std::mt19937_64& rng);

/// The PrivateTask of a diffusion run on `data` (without end_epoch): unit u
/// of a chunk gives rows u·G … u·G+G−1, G = group_size = K·max(1, augmult):
/// its augmult views (or the image itself), each repeated K times, in
/// [-1, 1] and the model's dtype; every row its own draw; losses by
/// edm_row_losses. save/load keep `rng` (views and draws) in the
/// checkpoint as "diffusion_rng". `net`, `data` and `rng` must outlive it.
PrivateTask make_diffusion_task(models::UNet& net,
                                const datasets::ImageDataset& data,
                                const TrainConfig& config, c10::Device device,
                                std::mt19937_64& rng);

/// The model `config.model` (a diffusion model of the registry, built with
/// models::unet_config) for `data`'s channels, image size and classes, with
/// config.init_checkpoint's weights when given (all but the class embedding
/// with config.reset_classifier, which starts a new one) and config.trainable's
/// parameters trainable. Seeded by config.seed. Throws std::invalid_argument
/// naming the flag: --model not a diffusion model or of another image size,
/// --init-checkpoint not matching, --trainable matching nothing.
models::UNet build_diffusion_model(const TrainConfig& config,
                                   const datasets::ImageDataset& data);

/// The training set of a diffusion run: the "train" split of config.dataset
/// (or the whole of an HDF5 file without splits), keeping config.classes
/// only (relabelled 0..k−1 in the order given).
datasets::ImageDataset load_diffusion_data(const TrainConfig& config);

/// One epoch of a diffusion run.
struct DiffusionEpochRecord {
  std::int64_t epoch = 0;  ///< 1-based
  std::int64_t step = 0;   ///< steps done
  /// Mean per-example EDM loss over the epoch's sampled examples (each the
  /// mean of its K rows). Computed from the training data without noise:
  /// NOT PRIVATE (a private run's log only); never part of a release.
  double train_loss = 0.0;
  double epsilon = 0.0;  ///< spent so far (0 for non-private pre-training)
  double seconds = 0.0;
};

/// What a private fine-tuning run did (the LoopResult's privacy side) and
/// its epochs.
struct DiffusionFitResult : LoopResult {
  std::vector<DiffusionEpochRecord> epochs;
  std::int64_t num_classes = 0;    ///< the model's labels (null = this)
  std::int64_t rows_per_unit = 0;  ///< K · max(1, augmult)
};

/// Private EDM training of a UNet: an adapter over PrivateLoop.
class DiffusionTrainer {
 public:
  /// Validates `config` (which must have task "diffusion"; std::invalid_
  /// argument naming the flag) and the model.
  DiffusionTrainer(models::UNet model, ValidConfig config);
  ~DiffusionTrainer();
  DiffusionTrainer(const DiffusionTrainer&) = delete;
  DiffusionTrainer& operator=(const DiffusionTrainer&) = delete;

  /// Trains on `train` (private data) as the config says; with
  /// config.resume, continues from config.checkpoint (the draw generator is
  /// part of the checkpoint, so a resumed run draws what an uninterrupted one
  /// would). Throws std::invalid_argument for data that does not fit the
  /// model.
  DiffusionFitResult fit(const datasets::ImageDataset& train);

  /// Writes the current (or, with `use_ema`, the EMA's) weights; false when
  /// the EMA is asked for and off.
  bool save_weights(const std::string& path, bool use_ema = false);

  /// The loop (engine, optimization, ε) for tests.
  PrivateLoop& loop();
  double epsilon() const;

  /// Receives the plan, notes and per-epoch lines (default: standard output).
  std::function<void(const std::string&)> log;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// The run's summary as one JSON object: privacy_summary_json's fields,
/// "task": "diffusion", the EDM settings, K, the last epoch's
/// train_loss_nonprivate, and "post_processing", which says that sampling
/// and every use of the samples carry the same (ε, δ).
std::string diffusion_summary_json(const DiffusionFitResult& result,
                                   const TrainConfig& config);

/// The checks of non-private pre-training: std::invalid_argument naming the
/// flag for the privacy settings it does not use (--target-epsilon,
/// --noise-multiplier, --checkpoint, --resume), a task other than
/// "diffusion", and as validate() does for every other field.
void check_pretraining_config(const TrainConfig& config);

/// What non-private pre-training did.
struct PretrainResult {
  std::int64_t steps = 0;
  std::int64_t examples = 0;
  std::vector<DiffusionEpochRecord> epochs;  ///< epsilon 0: not private
  double wall_seconds = 0.0;
};

/// NON-PRIVATE pre-training of `model` on `public_data`, which must be
/// public: the same loss as fine-tuning (K draws per example, label dropout)
/// on shuffled minibatches of config.batch_size examples, the optimizer of
/// config, no clipping, no noise, no accountant, no checkpoint. Steps:
/// config.steps, or config.epochs passes. Throws as
/// check_pretraining_config, and std::invalid_argument for data that does
/// not fit the model.
PretrainResult pretrain_diffusion(
    models::UNet& model, const datasets::ImageDataset& public_data,
    const TrainConfig& config,
    const std::function<void(const std::string&)>& log = nullptr);

/// The pre-training summary: "non_private": true, "privacy" saying that no
/// differential privacy applies and the data must be public, steps, the
/// losses, the config.
std::string pretrain_summary_json(const PretrainResult& result,
                                  const TrainConfig& config);

/// CRC-32 of the bytes of the file at `path`: the fine-tuning summary
/// records it for each weights file the run wrote ("weights_crc32"), and
/// sampling checks --weights against it. Throws std::invalid_argument naming
/// the file when it cannot be read.
std::uint32_t file_crc32(const std::string& path);

/// `dptrain diffusion finetune`: validates (config.task must be
/// "diffusion"), checks the outputs before reading data, loads
/// load_diffusion_data, builds the model, trains privately, writes
/// --save-weights (and the EMA's) and returns the summary JSON, with
/// "weights_crc32": {path: CRC-32} of the weights files written.
std::string run_diffusion_finetuning(const TrainConfig& config);

/// `dptrain diffusion pretrain`: the same on public data without privacy
/// (pretrain_diffusion); returns pretrain_summary_json.
std::string run_diffusion_pretraining(const TrainConfig& config);

}  // namespace dptrain::train
