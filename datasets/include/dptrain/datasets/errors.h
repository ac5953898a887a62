// The one error type of the dataset readers. Torch-free so the parsers (and
// their fuzzers) build without LibTorch.
#pragma once

#include <stdexcept>
#include <string>

namespace dptrain::datasets {

/// A data file is missing, unreadable or malformed. what() reads
/// "<file>: <what is wrong>", e.g.
/// "data/train-images-idx3-ubyte: wrong magic 0x00000a03, expected ...".
class DatasetError : public std::runtime_error {
 public:
  DatasetError(const std::string& file, const std::string& problem)
      : std::runtime_error(file + ": " + problem), file_(file) {}

  /// The file (or folder) the problem is in.
  const std::string& file() const noexcept { return file_; }

 private:
  std::string file_;
};

}  // namespace dptrain::datasets
