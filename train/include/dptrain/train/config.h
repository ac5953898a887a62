// The settings of one training run, as `dptrain train` flags or a TOML file.
// Keys are the flag names without dashes, in kebab-case or snake_case
// (`target-epsilon = 3` and `target_epsilon = 3` are the same key).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace dptrain::train {

/// Bounds that validate() enforces: far past any real run, small enough that
/// nothing overflows (σ·C·z in float, steps·B in int64).
inline constexpr double kMaxNoiseMultiplier = 1e6;
inline constexpr double kMaxGradNorm = 1e6;
inline constexpr std::int64_t kMaxSteps = 1'000'000'000;
inline constexpr std::int64_t kMaxEpochs = 1'000'000;

/// Everything a run needs. Field names follow the DP literature's spelling.
struct TrainConfig {
  // Task and data.
  /// "classify" (images), "lm" (byte-level language model) or "diffusion"
  /// (a class-conditional UNet, `dptrain diffusion finetune`).
  std::string task = "classify";
  std::string dataset =
      "fashion-mnist";  ///< name, IDX/CIFAR folder, .h5 file, text:FILE
  double validation_fraction =
      0.0;  ///< carved from train (seeded); 0 = test on test split
  std::string model = "cnn";

  // Language models (--task lm): one sequence of `sequence_length` bytes is
  // one privacy unit.
  std::int64_t sequence_length = 128;  ///< tokens per sequence (>= 2)
  /// --task lm: a SentencePiece tokenizer.model ("" = bytes, vocabulary 256);
  /// the model's vocabulary becomes the tokenizer's.
  std::string tokenizer;
  /// --task lm: "record" (one sequence: a JSONL record, or a fixed-length
  /// piece of a text file) or "user" (all of a JSONL user's records).
  std::string privacy_unit = "record";
  /// --privacy-unit user: a user's gradient is the mean over at most this
  /// many of their records (a fresh random choice each time the user is
  /// sampled when they have more), clipped once.
  std::int64_t records_per_user = 8;
  bool freeze_embeddings = false;  ///< the tied embedding is not trained
  std::vector<std::int64_t>
      train_blocks;  ///< non-empty: train only these residual blocks
  /// --task lm: LoRA adapters of this rank on the Linear layers matching
  /// lora_layers; everything else frozen (0 = off, full fine-tuning).
  std::int64_t lora_rank = 0;
  double lora_alpha = 0.0;                ///< 0: alpha = rank (scale 1)
  std::string lora_layers = "blocks\\.";  ///< regex over module paths
  /// Weights to start from. --task lm: .safetensors or .h5 with
  /// RecurrentGemma's published names; --task classify: dptrain weights
  /// (.h5/.hdf5 or .pt/.pth, models/weights.h).
  std::string init_checkpoint;

  // Image fine-tuning (--task classify).
  /// Re-initialise the classifier head for the data's classes (its tensors
  /// in init_checkpoint are then not loaded, so any class count fits).
  bool reset_classifier = false;
  /// Parameters trained: "all", "classifier" (the head only) or a regex over
  /// parameter names; the others are frozen (no per-example work, no noise).
  std::string trainable = "all";
  /// Non-empty: train and evaluate on these classes only, relabelled 0..k-1.
  std::vector<std::int64_t> classes;
  /// Non-empty: {H, W}, the size image folders and CSV lists of JPEG/PNG
  /// files are scaled (to cover) and centre-cropped to on load.
  std::vector<std::int64_t> image_size;

  /// The release artefact: write the final weights (last iterate; and the
  /// EMA's to "<stem>.ema<ext>" when EMA is on) in the format of the
  /// extension (--task classify: .h5 or .pt; --task lm: .safetensors).
  std::string save_weights;
  /// --task lm: a public text file to report perplexity on (the held-out
  /// tail of --dataset is private data, not noised).
  std::string eval_dataset;

  // Diffusion models (--task diffusion): EDM training of a UNet on images
  // scaled to [-1, 1]. One example with its K noise draws (times the augmult
  // views) is one privacy unit: the K losses are averaged before clipping.
  /// K: (σ, noise) draws per example and step. DPDM uses 32; the default 4
  /// keeps a CPU step affordable (the cost of a step grows linearly in K).
  std::int64_t noise_multiplicity = 4;
  /// Probability that a row's label becomes the null class (classifier-free
  /// guidance; DPDM and Ghalebikesabi et al. use 0.1).
  double label_dropout = 0.1;
  double edm_p_mean = -1.2;  ///< mean of ln σ of the training noise levels
  double edm_p_std = 1.2;    ///< standard deviation of ln σ
  double sigma_data = 0.5;   ///< σ_d of EDM's preconditioning ([-1, 1] data)
  /// What the network predicts: "edm" (Karras et al.'s preconditioning) or
  /// "v" (v-prediction, DPDM's choice at ε = 0.2). Sampling must use the same.
  std::string diffusion_objective = "edm";
  /// The training distribution of σ: "log-normal" (edm_p_mean, edm_p_std),
  /// "high-noise-mix" (log-normal, with probability high_noise_weight
  /// log-uniform on [0.002, 80]: our form of Ghalebikesabi et al.'s
  /// up-weighting of large noise levels) or "cosine" (DPDM's v-runs).
  std::string sigma_distribution = "log-normal";
  double high_noise_weight = 0.2;

  // Privacy.
  double target_epsilon = 0.0;  ///< > 0: calibrate noise_multiplier to reach it
  double delta = 1e-5;
  double noise_multiplier = 0.0;  ///< used when target_epsilon is 0
  double max_grad_norm = 1.0;     ///< C
  bool normalize_clipped =
      false;  ///< De et al.: clipped gradients scaled by 1/C
  std::string clipping = "flat";  ///< "flat" or "per-layer"
  /// How the clipping engine's layer rules pick their routes: "model" (the
  /// cost model), "measure" (time each exact route once per layer shape,
  /// keep the fastest) or "fixed" (route_cache's, else the cost model's);
  /// dptrain/dp/clipping/routes.h. The values clipped are the same up to
  /// rounding whichever route runs.
  std::string routes = "model";
  /// Non-empty: measured routes are read from this file (measure, fixed)
  /// and, with measure, new ones written to it (by rank 0 alone).
  std::string route_cache;
  /// Bound, in MiB, on the per-example gradients the clipping engine keeps
  /// from the norms to the weighted sums (GradientEngine::
  /// set_max_kept_bytes); beyond it a layer's weighted sum is recomputed
  /// from its activations (less memory, more time). -1: no bound.
  std::int64_t max_kept_mb = -1;
  /// 1: one backward pass (fastest); 2: norms as each gradient arrives, then
  /// a second backward of the reweighted loss (about the non-private peak
  /// memory, one more backward of time; flat clipping, no tied weights).
  std::int64_t backward_passes = 1;
  /// "no" or "bf16": the training forward under autocast to bf16 (products
  /// and convolutions), parameters, per-example norms, clipped sums and
  /// noise in float32 (dptrain/dp/layers/autocast.h); one backward pass
  /// only. Evaluation runs in float32.
  std::string mixed_precision = "no";
  std::string accountant = "rdp";  ///< "rdp" or "prv"
  std::string sampler =
      "poisson";  ///< "poisson" or "shuffle" (not covered by the accountant)

  // Optimisation.
  std::int64_t batch_size =
      256;  ///< expected logical batch (q = batch_size / N)
  std::int64_t max_physical_batch_size = 256;
  std::int64_t epochs = 0;  ///< epochs = steps * q; one of epochs/steps
  std::int64_t steps = 0;
  double lr = 0.1;
  std::string optimizer = "sgd";  ///< "sgd", "adam", "adamw"
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  std::string lr_schedule = "constant";  ///< "constant", "cosine"
  std::int64_t warmup_steps = 0;
  std::int64_t augmult =
      0;  ///< K augmented views per example; 0 = no augmentation
  /// The views' crop: "pad" (reflect-pad 4, random crop back) or
  /// "random-resized" (a random box of area fraction in [crop_scale_min, 1]
  /// scaled back to the image size). Both then flip left-right at random.
  std::string augment_crop = "pad";
  double crop_scale_min = 0.08;
  double ema_decay = 0.0;  ///< 0 = no EMA
  /// Data-parallel runs (WORLD_SIZE > 1): how long a rank waits for the
  /// others at a collective before it stops with an error, in seconds.
  double collective_timeout = 300.0;
  /// >= 0: also keep the uniform (Polyak–Ruppert) average of the iterates
  /// from this step on, evaluated alongside the last iterate; -1 = off.
  std::int64_t polyak_start = -1;

  // Run.
  std::optional<std::uint64_t>
      seed;  ///< set: seeded noise; unset: secure noise
  std::string device = "cpu";
  std::string checkpoint;  ///< path; empty = no checkpoints
  std::int64_t checkpoint_every =
      0;  ///< steps between checkpoints; 0 = each epoch
  bool resume = false;
  /// Start afresh over an existing checkpoint and ledger, discarding their
  /// record (said in the log); without it such a run is refused.
  bool overwrite = false;
  std::string metrics;       ///< JSON-lines path; empty = none
  std::string summary;       ///< final summary JSON path; empty = none
  bool diagnostics = false;  ///< non-private clipping statistics in the log

  /// Checks every field; throws std::invalid_argument naming the flag (as
  /// `--target-epsilon`) and the bad value.
  void validate() const;
};

/// A TrainConfig that passed validate(). It is made where a raw config enters
/// the library (run_image_training, run_lm_training, or a trainer or loop
/// given a TrainConfig: the conversion is implicit) and handed on from there,
/// so each run checks its settings once.
class ValidConfig {
 public:
  /// Throws std::invalid_argument naming the flag, as validate().
  ValidConfig(TrainConfig config)  // NOLINT(google-explicit-constructor)
      : config_(std::move(config)) {
    config_.validate();
  }
  const TrainConfig& get() const { return config_; }
  const TrainConfig& operator*() const { return config_; }
  const TrainConfig* operator->() const { return &config_; }

 private:
  TrainConfig config_;
};

/// One setting of TrainConfig: its key (the flag without "--"; a TOML file
/// may spell it in kebab- or snake_case), the member it sets and one line of
/// help. The table of them (config_fields()) is the one place a setting is
/// named: the TOML keys, the `dptrain train` flags and the JSON echo all come
/// from it, and the defaults are the member initialisers above.
struct ConfigField {
  using Member = std::variant<std::string TrainConfig::*, double TrainConfig::*,
                              std::int64_t TrainConfig::*, bool TrainConfig::*,
                              std::vector<std::int64_t> TrainConfig::*,
                              std::optional<std::uint64_t> TrainConfig::*>;
  const char* key;
  Member member;
  const char* help;
};

/// Every setting, in the order of `dptrain train --help`.
const std::vector<ConfigField>& config_fields();

/// Reads keys from a TOML file into `config` (keys not in the file keep their
/// value). Throws std::invalid_argument naming the file and key for an unknown
/// key, a wrong type, or a TOML syntax error.
void apply_toml_file(const std::string& path, TrainConfig& config);

/// The config as a JSON object text (for summaries and checkpoints).
std::string to_json(const TrainConfig& config);

/// All key names, in kebab-case (the flag names without `--`).
std::vector<std::string> config_keys();

}  // namespace dptrain::train
