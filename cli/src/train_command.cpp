// `dptrain train`: private training of an image classifier (--task classify)
// or a Griffin / Hawk byte-level language model (--task lm). Flags map 1:1 to
// TrainConfig fields; `--config FILE` reads the same keys from TOML and flags
// given on the command line override the file.
#include <fstream>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "commands.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/config.h"
#include "dptrain/train/image_run.h"
#include "dptrain/train/lm_trainer.h"

namespace dptrain::cli {
namespace {

using dptrain::train::TrainConfig;

struct Binding {
  CLI::Option* option;
  std::function<void(TrainConfig& dst, const TrainConfig& src)> copy;
};

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "train",
      "Train a model with DP-SGD. Give --target-epsilon (noise is calibrated) or "
      "--noise-multiplier (epsilon is reported). Privacy unit: one example "
      "(--task lm: one sequence of --sequence-length bytes); adjacency: "
      "add/remove one unit; Poisson sampling.");
  auto flags = std::make_shared<TrainConfig>();
  auto bindings = std::make_shared<std::vector<Binding>>();
  auto config_file = std::make_shared<std::string>();
  // Signed, so that a negative value is refused instead of wrapping to 2^64-1.
  auto seed = std::make_shared<std::int64_t>(0);

#define DPTRAIN_FLAG(name, field, help)                                           \
  bindings->push_back({cmd->add_option(name, flags->field, help),                 \
                       [](TrainConfig& d, const TrainConfig& s) { d.field = s.field; }})
#define DPTRAIN_SWITCH(name, field, help)                                         \
  bindings->push_back({cmd->add_flag(name, flags->field, help),                   \
                       [](TrainConfig& d, const TrainConfig& s) { d.field = s.field; }})

  cmd->add_option("--config", *config_file, "TOML file with the same keys as the flags");
  DPTRAIN_FLAG("--task", task,
               "classify (images) or lm (byte-level language model) [default classify]");
  DPTRAIN_FLAG("--dataset", dataset,
               "fashion-mnist, or a path: IDX folder, CIFAR folder, HDF5 file; "
               "--task lm: text:FILE [default fashion-mnist]");
  DPTRAIN_FLAG("--validation-fraction", validation_fraction,
               "carve this fraction of train (seeded) and evaluate on it instead of test");
  DPTRAIN_FLAG("--model", model,
               "model name (see `dptrain model list`; --task lm: griffin-tiny, hawk-tiny, "
               "griffin-25m, hawk-25m, ...) [default cnn]");
  DPTRAIN_FLAG("--sequence-length", sequence_length,
               "--task lm: bytes per sequence = one privacy unit [default 128]");
  DPTRAIN_SWITCH("--freeze-embeddings", freeze_embeddings,
                 "--task lm: do not train the tied embedding");
  bindings->push_back(
      {cmd->add_option("--train-blocks", flags->train_blocks,
                       "--task lm: train only these residual blocks, e.g. 0,2")
           ->delimiter(','),
       [](TrainConfig& d, const TrainConfig& s) { d.train_blocks = s.train_blocks; }});
  DPTRAIN_FLAG("--init-checkpoint", init_checkpoint,
               "start from these weights: --task classify: dptrain weights (.h5 or .pt, "
               "see models/README.md); --task lm: a RecurrentGemma-named .safetensors or .h5");
  DPTRAIN_SWITCH("--reset-classifier", reset_classifier,
                 "new classifier head for the data's classes (not loaded from --init-checkpoint)");
  DPTRAIN_FLAG("--trainable", trainable,
               "parameters to train: all, classifier, or a regex over names; others frozen "
               "[default all]");
  bindings->push_back(
      {cmd->add_option("--classes", flags->classes,
                       "train and evaluate on these classes only (relabelled 0..k-1), e.g. 5,6,7")
           ->delimiter(','),
       [](TrainConfig& d, const TrainConfig& s) { d.classes = s.classes; }});
  DPTRAIN_FLAG("--save-weights", save_weights,
               "write the final weights, the release artefact (.h5 or .pt; --task lm: .pt; "
               "the EMA's also to <stem>.ema<ext>)");
  DPTRAIN_FLAG("--eval-dataset", eval_dataset,
               "--task lm: a public text file for perplexity (default: the held-out tail of "
               "--dataset, private and not noised)");
  DPTRAIN_FLAG("--target-epsilon", target_epsilon, "privacy budget; noise is calibrated to it");
  DPTRAIN_FLAG("--delta", delta, "delta of (epsilon, delta)-DP [default 1e-5]");
  DPTRAIN_FLAG("--noise-multiplier", noise_multiplier,
               "sigma, instead of --target-epsilon (epsilon is then reported)");
  DPTRAIN_FLAG("--max-grad-norm", max_grad_norm, "per-example clipping norm C [default 1]");
  DPTRAIN_SWITCH("--normalize-clipped", normalize_clipped,
                 "rescale clipped gradients by 1/C (De et al.)");
  DPTRAIN_FLAG("--clipping", clipping, "flat or per-layer [default flat]");
  DPTRAIN_FLAG("--accountant", accountant, "rdp or prv [default rdp]");
  DPTRAIN_FLAG("--sampler", sampler,
               "poisson, or shuffle (NOT covered by the accountant) [default poisson]");
  DPTRAIN_FLAG("--batch-size", batch_size, "expected logical batch size B; q = B/N [default 256]");
  DPTRAIN_FLAG("--max-physical-batch-size", max_physical_batch_size,
               "rows (examples x augmult) per forward/backward chunk [default 256]");
  DPTRAIN_FLAG("--epochs", epochs, "epochs (steps = ceil(epochs N / B))");
  DPTRAIN_FLAG("--steps", steps, "logical steps, instead of --epochs");
  DPTRAIN_FLAG("--lr", lr, "learning rate [default 0.1]");
  DPTRAIN_FLAG("--optimizer", optimizer, "sgd, adam or adamw [default sgd]");
  DPTRAIN_FLAG("--momentum", momentum, "SGD momentum [default 0]");
  DPTRAIN_SWITCH("--nesterov", nesterov, "Nesterov momentum");
  DPTRAIN_FLAG("--weight-decay", weight_decay, "weight decay (applied after noise)");
  DPTRAIN_FLAG("--lr-schedule", lr_schedule, "constant or cosine [default constant]");
  DPTRAIN_FLAG("--warmup-steps", warmup_steps, "linear warm-up steps [default 0]");
  DPTRAIN_FLAG("--augmult", augmult,
               "K augmented views per example (crop+flip), averaged before clipping; 0 = none");
  DPTRAIN_FLAG("--ema-decay", ema_decay, "EMA of parameters with warm-up; 0 = off");
  DPTRAIN_FLAG("--polyak-start", polyak_start,
               "uniform (Polyak) average of the iterates from this step on, evaluated "
               "alongside the last iterate; -1 = off [default -1]");
  bindings->push_back({cmd->add_option("--seed", *seed,
                                       "seed: reproducible initialisation, sampling, "
                                       "augmentation and noise; not for release (default: "
                                       "secure randomness from the OS)"),
                       [seed](TrainConfig& d, const TrainConfig&) {
                         if (*seed < 0) {
                           throw std::invalid_argument("--seed must be >= 0, got " +
                                                       std::to_string(*seed));
                         }
                         d.seed = static_cast<std::uint64_t>(*seed);
                       }});
  DPTRAIN_FLAG("--device", device, "cpu, cuda, cuda:N or auto [default cpu]");
  DPTRAIN_FLAG("--checkpoint", checkpoint, "checkpoint file (written atomically)");
  DPTRAIN_FLAG("--checkpoint-every", checkpoint_every, "steps between checkpoints; 0 = each epoch");
  DPTRAIN_SWITCH("--resume", resume, "continue the run saved in --checkpoint");
  DPTRAIN_SWITCH("--overwrite", overwrite,
                 "start afresh over an existing --checkpoint, discarding its privacy record");
  DPTRAIN_FLAG("--metrics", metrics, "append per-epoch metrics as JSON lines to this file");
  DPTRAIN_FLAG("--summary", summary, "write the final summary JSON to this file");
  DPTRAIN_SWITCH("--diagnostics", diagnostics, "NON-PRIVATE clipping statistics in the log");
#undef DPTRAIN_FLAG
#undef DPTRAIN_SWITCH

  cmd->callback([flags, bindings, config_file] {
    TrainConfig config;
    if (!config_file->empty()) train::apply_toml_file(*config_file, config);
    for (const auto& b : *bindings) {
      if (b.option->count() > 0) b.copy(config, *flags);
    }
    const auto summary = config.task == "lm" ? train::run_lm_training(config).summary_json
                                             : train::run_image_training(config).summary_json;
    std::cout << summary << std::endl;
    if (!config.summary.empty()) {
      train::write_file_atomically(config.summary, summary + "\n");
    }
  });
}

}  // namespace dptrain::cli
