// `dptrain train`: private training of an image classifier (--task classify)
// or a Griffin / Hawk byte-level language model (--task lm). The flags come
// from TrainConfig's field table (train/config.h), one per field; `--config
// FILE` reads the same keys from TOML and flags given on the command line
// override the file.
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
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/config.h"
#include "dptrain/train/image_run.h"
#include "dptrain/train/lm_trainer.h"
#include "dptrain/train/recipes.h"

namespace dptrain::cli {
namespace {

using dptrain::train::TrainConfig;

struct Binding {
  CLI::Option* option;
  std::function<void(TrainConfig& dst)> copy;  // the parsed value into dst
};

std::string with_default(const std::string& help, const std::string& value) {
  return value.empty() ? help : help + " [default " + value + "]";
}

// One flag per config field (train/config.h's table): a parsed value lands
// in its own storage and is copied into the config only when given, so that
// flags override the --config file.
struct AddFlag {
  CLI::App* cmd;
  const train::ConfigField& field;
  std::vector<Binding>& bindings;
  std::string flag() const { return std::string("--") + field.key; }

  template <typename T>
  void operator()(T TrainConfig::*member) const {
    auto value = std::make_shared<T>();
    std::ostringstream shown;
    shown << TrainConfig{}.*member;
    bindings.push_back(
        {cmd->add_option(flag(), *value, with_default(field.help, shown.str())),
         [value, member](TrainConfig& d) { d.*member = *value; }});
  }
  void operator()(bool TrainConfig::*member) const {
    auto value = std::make_shared<bool>(false);
    bindings.push_back(
        {cmd->add_flag(flag(), *value, field.help),
         [value, member](TrainConfig& d) { d.*member = *value; }});
  }
  void operator()(std::vector<std::int64_t> TrainConfig::*member) const {
    auto value = std::make_shared<std::vector<std::int64_t>>();
    bindings.push_back(
        {cmd->add_option(flag(), *value, field.help)->delimiter(','),
         [value, member](TrainConfig& d) { d.*member = *value; }});
  }
  void operator()(std::optional<std::uint64_t> TrainConfig::*member) const {
    // Signed, so that a negative value is refused instead of wrapping to
    // 2^64-1.
    auto value = std::make_shared<std::int64_t>(0);
    bindings.push_back({cmd->add_option(flag(), *value, field.help),
                        [value, member, name = flag()](TrainConfig& d) {
                          if (*value < 0) {
                            throw std::invalid_argument(name +
                                                        " must be >= 0, got " +
                                                        std::to_string(*value));
                          }
                          d.*member = static_cast<std::uint64_t>(*value);
                        }});
  }
};

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", summary_of("train"));
  auto bindings = std::make_shared<std::vector<Binding>>();
  auto config_file = std::make_shared<std::string>();
  cmd->add_option("--config", *config_file,
                  "TOML file with the same keys as the flags");
  for (const auto& field : train::config_fields()) {
    std::visit(AddFlag{cmd, field, *bindings}, field.member);
  }

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
      if (!config_file->empty()) train::apply_toml_file(*config_file, config);
      for (const auto& b : *bindings) {
        if (b.option->count() > 0) b.copy(config);
      }
      return config;
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
      std::cout << "recipe: " << recipe->model << " from " << recipe->source
                << ": " << recipe->settings << ", " << recipe->epochs
                << " epochs (flags override it; --recipe none turns it off)"
                << std::endl;
    }
    auto summary = config.task == "lm"
                       ? train::run_lm_training(config).summary_json
                       : train::run_image_training(config).summary_json;
    if (recipe != nullptr) {
      auto j = nlohmann::json::parse(summary);
      j["recipe"] = recipe->model + " from " + recipe->source;
      summary = j.dump();
    }
    std::cout << summary << std::endl;
    if (!config.summary.empty()) {
      train::write_file_atomically(config.summary, summary + "\n");
    }
  });
}

}  // namespace dptrain::cli
