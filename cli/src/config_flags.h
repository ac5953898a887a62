// The flags of TrainConfig's field table (train/config.h), shared by
// `dptrain train` and `dptrain diffusion`: one flag per field, and `--config
// FILE` reading the same keys from TOML; flags given on the command line
// override the file.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "dptrain/train/config.h"

namespace dptrain::cli {

using dptrain::train::TrainConfig;

/// One flag and how its parsed value lands in a config.
struct Binding {
  CLI::Option* option;
  std::function<void(TrainConfig& dst)> copy;  // the parsed value into dst
};

inline std::string with_default(const std::string& help,
                                const std::string& value) {
  return value.empty() ? help : help + " [default " + value + "]";
}

// One flag per config field (train/config.h's table): a parsed value lands
// in its own storage and is copied into the config only when given, so that
// flags override the --config file.
struct AddFlag {
  CLI::App* cmd;
  const train::ConfigField& field;
  std::vector<Binding>& bindings;
  const TrainConfig& defaults;  // shown in the help
  std::string flag() const { return std::string("--") + field.key; }

  template <typename T>
  void operator()(T TrainConfig::*member) const {
    auto value = std::make_shared<T>();
    std::ostringstream shown;
    shown << defaults.*member;
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

/// Adds --config (into `config_file`) and one flag per config field, whose
/// help shows the value of `defaults`.
inline void add_config_flags(CLI::App* cmd, std::vector<Binding>& bindings,
                             std::string& config_file,
                             const TrainConfig& defaults = TrainConfig{}) {
  cmd->add_option("--config", config_file,
                  "TOML file with the same keys as the flags");
  for (const auto& field : train::config_fields()) {
    std::visit(AddFlag{cmd, field, bindings, defaults}, field.member);
  }
}

/// `config` with the --config file's keys, then the flags given, applied.
inline TrainConfig configured(TrainConfig config,
                              const std::vector<Binding>& bindings,
                              const std::string& config_file) {
  if (!config_file.empty()) train::apply_toml_file(config_file, config);
  for (const auto& b : bindings) {
    if (b.option->count() > 0) b.copy(config);
  }
  return config;
}

/// Adds `--config FILE` to a command read by apply_flags_file.
inline void add_flags_file_option(CLI::App* cmd, std::string& file) {
  cmd->add_option("--config", file,
                  "TOML file whose keys are this command's long flags without "
                  "the dashes (steps = 12); flags given override it");
}

/// Reads a `--config` TOML file for a command whose flags are plain CLI11
/// options (not TrainConfig fields): each key is a long flag of `cmd` without
/// its dashes; a flag given on the command line overrides the file. Unknown
/// keys, sections and unconvertible values are errors naming the file and the
/// key. CLI11 2.1 does not read config files of subcommands itself, and it
/// has checked required flags before this runs: `required` are checked here,
/// on the command line and the file together.
inline void apply_flags_file(CLI::App* cmd, const std::string& file,
                             const std::vector<std::string>& required) {
  if (!file.empty()) {
    std::vector<CLI::ConfigItem> items;
    try {
      items = CLI::ConfigTOML().from_file(file);
    } catch (const CLI::Error& e) {
      throw std::invalid_argument("--config '" + file + "': " + e.what());
    }
    for (const auto& item : items) {
      if (item.name == "++" || item.name == "--" || !item.parents.empty()) {
        throw std::invalid_argument(
            "--config '" + file + "': sections are not read, got [" +
            (item.parents.empty() ? item.name : item.parents.front()) + "]");
      }
      CLI::Option* option = cmd->get_option_no_throw("--" + item.name);
      if (option == nullptr || item.name == "config" || item.name == "help") {
        throw std::invalid_argument("--config '" + file + "': unknown key '" +
                                    item.name + "' (not a flag of `" +
                                    cmd->get_name() + "`)");
      }
      if (option->count() > 0) continue;  // the command line wins
      try {
        option->add_result(item.inputs);
        option->run_callback();
      } catch (const CLI::Error& e) {
        throw std::invalid_argument("--config '" + file + "': key '" +
                                    item.name + "': " + e.what());
      }
    }
  }
  for (const auto& flag : required) {
    if (cmd->get_option(flag)->count() == 0) {
      throw std::invalid_argument(flag +
                                  " is required (on the command line or in "
                                  "--config)");
    }
  }
}

}  // namespace dptrain::cli
