#include "dptrain/datasets/split.h"

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

}  // namespace dptrain::datasets
