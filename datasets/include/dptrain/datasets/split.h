// Names of the standard splits of a data set.
#pragma once

#include <string>
#include <vector>

namespace dptrain::datasets {

/// The two splits published data sets ship with.
enum class Split { kTrain, kTest };

/// "train" or "test".
std::string to_string(Split split);

/// Parses "train" or "test" (also "t10k" for test); throws
/// std::invalid_argument naming the value otherwise.
Split parse_split(const std::string& name);

/// Throws std::invalid_argument ("split \"val\" is not in PATH (it has:
/// train, test)") unless `split` is one of `splits`, the splits of `path`.
void require_split(const std::vector<std::string>& splits,
                   const std::string& split, const std::string& path);

}  // namespace dptrain::datasets
