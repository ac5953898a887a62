// `dptrain diffusion pretrain | finetune | sample | evaluate`: the diffusion
// half of dptrain (issue 15). pretrain and finetune take the flags of `dptrain
// train` (TrainConfig's field table) with --task diffusion implied; sample has
// its own. Parsing and printing only: the library checks and decides.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "command_summaries.h"
#include "commands.h"
#include "config_flags.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/diffusion_evaluation.h"
#include "dptrain/train/diffusion_sampling.h"
#include "dptrain/train/diffusion_trainer.h"

namespace dptrain::cli {
namespace {

// The defaults of a diffusion run under the --config file and the flags.
TrainConfig diffusion_defaults() {
  TrainConfig c;
  c.task = "diffusion";
  c.model = "unet-small";
  c.optimizer = "adam";
  c.lr = 1e-3;
  return c;
}

void add_training_subcommand(CLI::App* parent, const std::string& name,
                             const std::string& help, bool is_private) {
  auto* cmd = parent->add_subcommand(name, help);
  auto bindings = std::make_shared<std::vector<Binding>>();
  auto config_file = std::make_shared<std::string>();
  add_config_flags(cmd, *bindings, *config_file, diffusion_defaults());
  cmd->callback([bindings, config_file, is_private] {
    const TrainConfig config =
        configured(diffusion_defaults(), *bindings, *config_file);
    const std::string summary = is_private
                                    ? train::run_diffusion_finetuning(config)
                                    : train::run_diffusion_pretraining(config);
    std::cout << summary << std::endl;
    if (!config.summary.empty()) {
      train::write_file_atomically(config.summary, summary + "\n");
    }
  });
}

void add_sample_subcommand(CLI::App* parent) {
  auto* cmd = parent->add_subcommand(
      "sample",
      "Sample labelled synthetic images from diffusion weights (EDM's Heun "
      "or stochastic sampler, or DDIM; classifier-free guidance) into an HDF5 "
      "data set that "
      "`dptrain train --dataset` reads, and a PNG grid (one row per class). "
      "Post-processing: the samples carry the fine-tuning run's (epsilon, "
      "delta), recorded from --privacy-summary.");
  auto run = std::make_shared<train::SampleRun>();
  auto seed = std::make_shared<std::int64_t>(-1);
  auto config_file = std::make_shared<std::string>();
  add_flags_file_option(cmd, *config_file);
  cmd->add_option("--weights", run->weights,
                  "weights written by `diffusion finetune --save-weights` "
                  "(required)");
  cmd->add_option("--model", run->model,
                  "the diffusion model of the weights (required)");
  cmd->add_option("--num-samples", run->num_samples,
                  "images to write to the \"train\" split, balanced labels "
                  "(required)");
  cmd->add_option("--out", run->out, "output HDF5 file, .h5 (required)");
  cmd->add_option("--test-samples", run->test_samples,
                  "also write this many to a \"test\" split [default 0]");
  cmd->add_option("--grid", run->grid,
                  "also write a PNG grid, one row a class");
  cmd->add_option("--grid-columns", run->grid_columns,
                  "images per class in the grid [default 10]");
  cmd->add_option("--classes", run->classes,
                  "sample only these model classes, e.g. 0,2 (default: all)")
      ->delimiter(',');
  cmd->add_option("--num-classes", run->num_classes,
                  "classes the model was trained with (default: from "
                  "--privacy-summary, else 10)");
  cmd->add_option("--channels", run->channels,
                  "image channels of the model (default: the model's)");
  cmd->add_option("--guidance", run->sampler.guidance,
                  "classifier-free guidance weight w >= 0 [default 0]");
  cmd->add_option("--sampler", run->sampler.sampler,
                  "heun (EDM, deterministic), churn (EDM's stochastic "
                  "sampler) or ddim [default heun]");
  cmd->add_option("--churn", run->sampler.churn,
                  "S_churn of --sampler churn [default 40]");
  cmd->add_option("--steps", run->sampler.steps,
                  "sampler steps (noise levels) [default 18]");
  cmd->add_option("--batch-size", run->sampler.batch_size,
                  "images per sampler call [default 64]");
  cmd->add_option("--sigma-data", run->sampler.sigma_data,
                  "EDM sigma_data the model was trained with [default 0.5]");
  cmd->add_option("--objective", run->objective,
                  "edm or v, as the model was trained (default: from "
                  "--privacy-summary, else edm)");
  cmd->add_option("--seed", *seed,
                  "seed of the initial noise (default: from the OS)");
  cmd->add_option("--device", run->device, "cpu, cuda, cuda:N or auto");
  cmd->add_option("--privacy-summary", run->privacy_summary,
                  "the --summary JSON of the fine-tuning run: its (epsilon, "
                  "delta) go into the output");
  cmd->callback([cmd, run, seed, config_file] {
    apply_flags_file(cmd, *config_file,
                     {"--weights", "--model", "--num-samples", "--out"});
    if (*seed < -1) {
      throw std::invalid_argument("--seed must be >= 0, got " +
                                  std::to_string(*seed));
    }
    if (*seed >= 0) run->seed = static_cast<std::uint64_t>(*seed);
    std::cout << train::run_diffusion_sampling(*run) << std::endl;
  });
}

void add_evaluate_subcommand(CLI::App* parent) {
  auto* cmd = parent->add_subcommand(
      "evaluate",
      "Downstream accuracy of a classifier trained (non-privately) on the "
      "synthetic images only and tested on the real test split, per class "
      "too, and FID on InceptionV3 (pytorch-fid layout, --inception-weights) "
      "and/or the built-in feature-cnn (--feature-weights, or trained on a "
      "PUBLIC --feature-dataset). Post-processing of the synthetic set.");
  auto run = std::make_shared<train::EvaluationRun>();
  auto seed = std::make_shared<std::int64_t>(0);
  auto config_file = std::make_shared<std::string>();
  add_flags_file_option(cmd, *config_file);
  cmd->add_option("--synthetic", run->synthetic,
                  "the HDF5 file of `diffusion sample`, its \"train\" split "
                  "(required)");
  cmd->add_option("--real", run->real,
                  "the real data set (name or path), its \"test\" split "
                  "(required)");
  cmd->add_option("--classes", run->classes,
                  "the real classes the synthetic labels 0..k-1 stand for, as "
                  "given to `diffusion finetune --classes`")
      ->delimiter(',');
  cmd->add_option("--classifier", run->classifier,
                  "the downstream model [default cnn]");
  cmd->add_option("--epochs", run->training.epochs, "[default 10]");
  cmd->add_option("--batch-size", run->training.batch_size, "[default 128]");
  cmd->add_option("--lr", run->training.lr, "Adam's [default 1e-3]");
  cmd->add_option("--validation-fraction", run->validation_fraction,
                  "synthetic images held out to choose the epoch reported "
                  "(0 = the last) [default 0.1]");
  cmd->add_option("--inception-weights", run->inception_weights,
                  "pytorch-fid's InceptionV3 weights, converted (.h5/.pt)");
  cmd->add_option("--feature-weights", run->feature_weights,
                  "weights of the feature-cnn (from --save-feature-weights)");
  cmd->add_option("--feature-dataset", run->feature_dataset,
                  "a PUBLIC data set to train the feature-cnn on (its "
                  "\"train\" split)");
  cmd->add_option("--feature-classes", run->feature_classes,
                  "only these classes of --feature-dataset")
      ->delimiter(',');
  cmd->add_option("--feature-epochs", run->feature_training.epochs,
                  "[default 5]");
  cmd->add_option("--save-feature-weights", run->save_feature_weights,
                  "keep the trained feature-cnn for later comparisons");
  cmd->add_option("--fid-samples", run->fid_samples,
                  "at most this many images a side for FID (0 = all)");
  cmd->add_option("--seed", *seed, "shuffles and initialisation [default 0]");
  cmd->add_option("--device", run->device, "cpu, cuda, cuda:N or auto");
  cmd->add_option("--json", run->json, "also write the summary here");
  cmd->callback([cmd, run, seed, config_file] {
    apply_flags_file(cmd, *config_file, {"--synthetic", "--real"});
    if (*seed < 0) {
      throw std::invalid_argument("--seed must be >= 0, got " +
                                  std::to_string(*seed));
    }
    run->training.seed = static_cast<std::uint64_t>(*seed);
    run->feature_training.seed = static_cast<std::uint64_t>(*seed);
    std::cout << train::run_diffusion_evaluation(*run) << std::endl;
  });
}

}  // namespace

void add_diffusion_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("diffusion", summary_of("diffusion"));
  cmd->require_subcommand(1);
  add_training_subcommand(
      cmd, "pretrain",
      "NON-PRIVATE pre-training of a diffusion UNet on a PUBLIC data set "
      "(--dataset, --classes): no clipping, no noise, no privacy guarantee. "
      "--save-weights gives the --init-checkpoint of `diffusion finetune`.",
      /*is_private=*/false);
  add_training_subcommand(
      cmd, "finetune",
      "Private (DP-SGD) training of a diffusion UNet on --dataset, from "
      "--init-checkpoint when given: the flags of `dptrain train` with --task "
      "diffusion. --save-weights is the release artefact.",
      /*is_private=*/true);
  add_sample_subcommand(cmd);
  add_evaluate_subcommand(cmd);
}

}  // namespace dptrain::cli
