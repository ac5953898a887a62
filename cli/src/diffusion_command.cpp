// `dptrain diffusion pretrain | finetune | sample`: the diffusion half of
// dptrain (issue 15). pretrain and finetune take the flags of `dptrain train`
// (TrainConfig's field table) with --task diffusion implied; sample has its
// own. Parsing and printing only: the library checks and decides.
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "command_summaries.h"
#include "commands.h"
#include "config_flags.h"
#include "dptrain/train/checkpoint.h"
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
      "Sample labelled synthetic images from diffusion weights (EDM Heun "
      "sampler, classifier-free guidance) into an HDF5 data set that "
      "`dptrain train --dataset` reads, and a PNG grid (one row per class). "
      "Post-processing: the samples carry the fine-tuning run's (epsilon, "
      "delta), recorded from --privacy-summary.");
  auto run = std::make_shared<train::SampleRun>();
  auto seed = std::make_shared<std::int64_t>(-1);
  cmd->add_option("--weights", run->weights,
                  "weights written by `diffusion finetune --save-weights`")
      ->required();
  cmd->add_option("--model", run->model, "the diffusion model of the weights")
      ->required();
  cmd->add_option("--num-samples", run->num_samples,
                  "images to write to the \"train\" split (balanced labels)")
      ->required();
  cmd->add_option("--out", run->out, "output HDF5 file (.h5)")->required();
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
  cmd->add_option("--steps", run->sampler.steps,
                  "Heun sampler steps [default 18]");
  cmd->add_option("--batch-size", run->sampler.batch_size,
                  "images per sampler call [default 64]");
  cmd->add_option("--sigma-data", run->sampler.sigma_data,
                  "EDM sigma_data the model was trained with [default 0.5]");
  cmd->add_option("--seed", *seed,
                  "seed of the initial noise (default: from the OS)");
  cmd->add_option("--device", run->device, "cpu, cuda, cuda:N or auto");
  cmd->add_option("--privacy-summary", run->privacy_summary,
                  "the --summary JSON of the fine-tuning run: its (epsilon, "
                  "delta) go into the output");
  cmd->callback([run, seed] {
    if (*seed < -1) {
      throw std::invalid_argument("--seed must be >= 0, got " +
                                  std::to_string(*seed));
    }
    if (*seed >= 0) run->seed = static_cast<std::uint64_t>(*seed);
    std::cout << train::run_diffusion_sampling(*run) << std::endl;
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
}

}  // namespace dptrain::cli
