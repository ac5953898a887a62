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

}  // namespace dptrain::cli
