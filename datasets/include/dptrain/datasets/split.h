// Names of the standard splits of a data set.
#pragma once

#include <string>

namespace dptrain::datasets {

/// The two splits published data sets ship with.
enum class Split { kTrain, kTest };

/// "train" or "test".
std::string to_string(Split split);

/// Parses "train" or "test" (also "t10k" for test); throws
/// std::invalid_argument naming the value otherwise.
Split parse_split(const std::string& name);

}  // namespace dptrain::datasets
