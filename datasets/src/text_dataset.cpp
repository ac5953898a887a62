#include "dptrain/datasets/text_dataset.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "dptrain/datasets/errors.h"

namespace dptrain::datasets {

TextDataset::TextDataset(std::string text, int64_t sequence_length)
    : text_(std::move(text)), sequence_length_(sequence_length) {
  if (sequence_length < 2) {
    throw std::invalid_argument("sequence_length must be >= 2, got " +
                                std::to_string(sequence_length));
  }
  num_sequences_ = static_cast<int64_t>(text_.size()) / sequence_length;
  if (num_sequences_ == 0) {
    throw std::invalid_argument(
        "text of " + std::to_string(text_.size()) +
        " bytes holds no complete sequence of sequence_length " +
        std::to_string(sequence_length));
  }
  text_.resize(static_cast<size_t>(num_sequences_ * sequence_length));
}

TextDataset TextDataset::from_file(const std::string& path,
                                   int64_t sequence_length) {
  // A folder opens as a stream of 0 bytes: say what it is instead. Pipes
  // and devices stay allowed (text:/dev/stdin).
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw DatasetError(path, "is a folder, expected a text file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DatasetError(path, "cannot open text file");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw DatasetError(path, "read error");
  return TextDataset(bytes.str(), sequence_length);
}

at::Tensor TextDataset::get(int64_t index) const {
  return batch({index}).squeeze(0);
}

at::Tensor TextDataset::batch(const std::vector<int64_t>& indices) const {
  const int64_t n = static_cast<int64_t>(indices.size());
  auto out = torch::empty({n, sequence_length_}, torch::kLong);
  auto* dst = out.data_ptr<int64_t>();
  for (int64_t r = 0; r < n; ++r) {
    const int64_t i = indices[static_cast<size_t>(r)];
    if (i < 0 || i >= num_sequences_) {
      throw std::out_of_range("sequence index must be in [0, " +
                              std::to_string(num_sequences_) + "), got " +
                              std::to_string(i));
    }
    const auto* src = reinterpret_cast<const unsigned char*>(text_.data()) +
                      i * sequence_length_;
    for (int64_t t = 0; t < sequence_length_; ++t) {
      dst[r * sequence_length_ + t] = src[t];
    }
  }
  return out;
}

TextDataset TextDataset::slice(int64_t begin, int64_t end) const {
  if (begin < 0 || end > num_sequences_ || begin >= end) {
    throw std::out_of_range("slice [" + std::to_string(begin) + ", " +
                            std::to_string(end) +
                            ") must be a non-empty part "
                            "of [0, " +
                            std::to_string(num_sequences_) + ")");
  }
  TextDataset out;
  out.sequence_length_ = sequence_length_;
  out.num_sequences_ = end - begin;
  out.text_ =
      text_.substr(static_cast<size_t>(begin * sequence_length_),
                   static_cast<size_t>((end - begin) * sequence_length_));
  return out;
}

}  // namespace dptrain::datasets
