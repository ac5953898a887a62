#include "dptrain/datasets/split.h"

#include <algorithm>
#include <stdexcept>

namespace dptrain::datasets {

std::string to_string(Split split) {
  return split == Split::kTrain ? "train" : "test";
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::kTrain;
  if (name == "test" || name == "t10k") return Split::kTest;
  throw std::invalid_argument("split must be \"train\" or \"test\", got \"" +
                              name + "\"");
}

void require_split(const std::vector<std::string>& splits,
                   const std::string& split, const std::string& path) {
  if (std::find(splits.begin(), splits.end(), split) != splits.end()) return;
  std::string have;
  for (const auto& s : splits) have += (have.empty() ? "" : ", ") + s;
  throw std::invalid_argument("split \"" + split + "\" is not in " + path +
                              " (it has: " + have + ")");
}

}  // namespace dptrain::datasets
