// `dptrain train`: private training of an image classifier (--task classify),
// a Griffin / Hawk byte-level language model (--task lm) or a diffusion UNet
// (--task diffusion, as `dptrain diffusion finetune`). The flags come
// from TrainConfig's field table (train/config.h), one per field; `--config
// FILE` reads the same keys from TOML and flags given on the command line
// override the file.
#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "command_summaries.h"
#include "commands.h"
#include "config_flags.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/config.h"
#include "dptrain/train/diffusion_trainer.h"
#include "dptrain/train/distributed.h"
#include "dptrain/train/image_run.h"
#include "dptrain/train/lm_trainer.h"
#include "dptrain/train/recipes.h"

namespace dptrain::cli {

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", summary_of("train"));
  auto bindings = std::make_shared<std::vector<Binding>>();
  auto config_file = std::make_shared<std::string>();
  add_config_flags(cmd, *bindings, *config_file);

  auto recipe_mode = std::make_shared<std::string>("auto");
  cmd->add_option(
         "--recipe", *recipe_mode,
         "auto: without --config, start from the model's recommended recipe "
         "(the "
         "settings of its shipped config; flags override them); none: the bare "
         "defaults [default auto]")
      ->check(CLI::IsMember({"auto", "none"}));

  cmd->callback([bindings, config_file, recipe_mode] {
    const auto given = [&](TrainConfig config) {
      return configured(std::move(config), *bindings, *config_file);
    };
    // The recipe sits under the --config file and the flags.
    const TrainConfig plain = given(TrainConfig{});
    const train::Recipe* recipe = nullptr;
    if (*recipe_mode == "auto" && config_file->empty() &&
        plain.task == "classify") {
      recipe = train::find_recipe(plain.model);
    }
    TrainConfig config = plain;
    if (recipe != nullptr) {
      TrainConfig base;
      recipe->apply(base);
      config = given(base);
      if (config.epochs == 0 && config.steps == 0)
        config.epochs = recipe->epochs;
    }
    // A rank of a data-parallel run (dptrain launch, torchrun's variables):
    // rank 0 alone speaks and writes (train/distributed.h).
    const auto env = train::distributed_env_from_environment();
    if (env.distributed()) {
      if (config.task == "diffusion") {
        throw std::invalid_argument(
            "WORLD_SIZE=" + std::to_string(env.world_size) +
            ": data-parallel training supports --task classify and lm, not "
            "diffusion");
      }
      train::set_process_communicator(train::connect_gloo(
          env, std::chrono::milliseconds(static_cast<std::int64_t>(
                   config.collective_timeout * 1000.0))));
      if (env.rank != 0) {
        config.summary.clear();
        config.save_weights.clear();
        config.metrics.clear();
      }
    }
    const bool speaks = env.rank == 0;
    if (recipe != nullptr && speaks) {
      std::cout << "recipe: " << recipe->model << " from " << recipe->source
                << ": " << recipe->settings << ", " << recipe->epochs
                << " epochs (flags override it; --recipe none turns it off)"
                << std::endl;
    }
    auto summary = config.task == "lm"
                       ? train::run_lm_training(config).summary_json
                   : config.task == "diffusion"
                       ? train::run_diffusion_finetuning(config)
                       : train::run_image_training(config).summary_json;
    auto j = nlohmann::json::parse(summary);
    if (recipe != nullptr)
      j["recipe"] = recipe->model + " from " + recipe->source;
    if (env.distributed()) {
      j["world_size"] = env.world_size;
      j["distributed"] =
          "data-parallel over c10d/Gloo: one global Poisson batch shared "
          "between the ranks, clipped sums all-reduced, noise drawn once (rank "
          "0)";
    }
    summary = j.dump();
    if (!speaks) return;
    std::cout << summary << std::endl;
    if (!config.summary.empty()) {
      train::write_file_atomically(config.summary, summary + "\n");
    }
  });
}

}  // namespace dptrain::cli
