// Recommended training recipes: the settings of a shipped config that make a
// run given only --dataset and --target-epsilon learn (the bare defaults,
// lr 0.1 without momentum at batch 256, reach ~55% on Fashion-MNIST at
// epsilon 1).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "dptrain/train/config.h"

namespace dptrain::train {

struct Recipe {
  std::string model;   ///< the model it is for
  std::string source;  ///< the config and paper it comes from
  /// The settings it makes, as flags (for the log).
  std::string settings;
  /// Sets them (before a --config file and the flags, which override it).
  std::function<void(TrainConfig&)> apply;
  /// Epochs when neither --epochs nor --steps is given.
  std::int64_t epochs = 0;
};

/// The recipe of `model` (--task classify), or nullptr when it has none.
const Recipe* find_recipe(const std::string& model);

}  // namespace dptrain::train
