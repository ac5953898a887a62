// Byte-level text for language models: a file's bytes (vocabulary 256) cut
// into fixed-length, non-overlapping sequences.
//
// Privacy unit: ONE SEQUENCE. DP-SGD over these sequences protects each
// sequence of `sequence_length` bytes; a document (or a person's text) that
// spans k sequences is protected only with group privacy over k units.
// Sequences never overlap, so each byte belongs to exactly one unit.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::datasets {

/// A byte string cut into sequences of `sequence_length` bytes.
class TextDataset {
 public:
  /// Sequences text[i·L, (i+1)·L) for every complete one; the tail shorter
  /// than L is dropped. Throws std::invalid_argument if sequence_length < 2
  /// or the text holds no complete sequence (message names both lengths).
  TextDataset(std::string text, int64_t sequence_length);
  /// Reads a file's bytes. Throws DatasetError naming the file if it is a
  /// folder or cannot be read, std::invalid_argument as the constructor.
  static TextDataset from_file(const std::string& path,
                               int64_t sequence_length);

  int64_t size() const { return num_sequences_; }
  int64_t sequence_length() const { return sequence_length_; }
  /// Bytes that belong to some sequence (size() · sequence_length()).
  int64_t num_bytes() const { return num_sequences_ * sequence_length_; }
  /// Sequence i as int64 [L] in [0, 256). Throws std::out_of_range.
  at::Tensor get(int64_t index) const;
  /// Rows at `indices`, int64 [B, L] (B may be 0). Throws std::out_of_range
  /// naming the first bad index.
  at::Tensor batch(const std::vector<int64_t>& indices) const;
  /// A data set of the sequences [begin, end) (e.g. a held-out tail).
  TextDataset slice(int64_t begin, int64_t end) const;

 private:
  TextDataset() = default;
  std::string text_;
  int64_t sequence_length_ = 0;
  int64_t num_sequences_ = 0;
};

}  // namespace dptrain::datasets
