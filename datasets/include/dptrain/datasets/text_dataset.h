// Token sequences for language models, from three sources:
//  - a text file's bytes or tokens cut into fixed-length, non-overlapping
//    sequences (TextDataset(text, L), from_tokens);
//  - records (JSONL lines with a "text" field), each cut or padded to L
//    tokens (from_records): one record is one sequence, and each sequence
//    knows its valid length so that padding carries no loss;
//  - the same with a "user" field: sequences know their user, so that a
//    trainer can make one user (all their records) the privacy unit.
//
// Privacy unit (what the trainer makes of it): ONE SEQUENCE by default. A
// document that spans k sequences is protected only with group privacy over
// k units; records are one sequence each; user-level training groups a
// user's sequences (LmTrainer, --privacy-unit user).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dptrain::datasets {

class Tokenizer;

/// A set of equal-length token sequences [N, L], some padded.
class TextDataset {
 public:
  /// Byte sequences text[i·L, (i+1)·L) for every complete one; the tail
  /// shorter than L is dropped. Throws std::invalid_argument if
  /// sequence_length < 2 or the text holds no complete sequence (message
  /// names both lengths).
  TextDataset(std::string text, int64_t sequence_length);
  /// Reads a file's bytes. Throws DatasetError naming the file if it is a
  /// folder or cannot be read, std::invalid_argument as the constructor.
  static TextDataset from_file(const std::string& path,
                               int64_t sequence_length);
  /// A file's text through `tokenizer`, cut as above.
  static TextDataset from_file(const std::string& path, int64_t sequence_length,
                               const Tokenizer& tokenizer);
  /// Token ids (>= 0) cut as above.
  static TextDataset from_tokens(const std::vector<std::int32_t>& tokens,
                                 int64_t sequence_length);
  /// One sequence per record: the first L ids of a longer record, a shorter
  /// one padded with `pad_id` (valid length kept). Records of fewer than 2
  /// ids predict nothing: the caller drops them. `users`, when given, has
  /// one user index per record (>= 0). Throws std::invalid_argument for
  /// sequence_length < 2, no records, a record of < 2 ids, or a users list
  /// of another length.
  static TextDataset from_records(
      const std::vector<std::vector<std::int32_t>>& records,
      int64_t sequence_length, std::int32_t pad_id,
      const std::vector<std::int64_t>* users = nullptr);

  int64_t size() const { return num_sequences_; }
  int64_t sequence_length() const { return sequence_length_; }
  /// Tokens stored (size() · sequence_length(), padding included).
  int64_t num_bytes() const { return num_sequences_ * sequence_length_; }
  /// Valid (non-padding) tokens over all sequences.
  int64_t num_valid_tokens() const;
  /// Some sequence is shorter than sequence_length().
  bool padded() const { return !lengths_.empty(); }
  /// Made by from_records: each sequence is one record.
  bool records() const { return records_; }
  /// The largest id stored (for a vocabulary check); −1 when empty.
  std::int32_t max_id() const;

  /// Sequence i as int64 [L]. Throws std::out_of_range.
  at::Tensor get(int64_t index) const;
  /// Rows at `indices`, int64 [B, L] (B may be 0). Throws std::out_of_range
  /// naming the first bad index.
  at::Tensor batch(const std::vector<int64_t>& indices) const;
  /// Valid lengths (tokens before padding) of the rows at `indices`, int64
  /// [B]; L for every unpadded sequence.
  at::Tensor lengths(const std::vector<int64_t>& indices) const;
  int64_t length(int64_t index) const;

  /// Users (from_records with users): their count, each sequence's user,
  /// and the sequences of each user in order. No users: num_users() 0.
  int64_t num_users() const { return num_users_; }
  int64_t user_of(int64_t index) const;
  std::vector<std::vector<int64_t>> sequences_by_user() const;

  /// A data set of the sequences [begin, end) (e.g. a held-out tail).
  TextDataset slice(int64_t begin, int64_t end) const;
  /// The sequences at `indices`, in that order (users renumbered densely in
  /// order of first appearance). Throws std::out_of_range.
  TextDataset subset(const std::vector<int64_t>& indices) const;

 private:
  TextDataset() = default;
  void check_index(int64_t index) const;
  std::vector<std::int32_t> tokens_;   // num_sequences_ · sequence_length_
  std::vector<std::int32_t> lengths_;  // per sequence; empty = all full
  std::vector<std::int64_t> users_;    // per sequence; empty = no users
  int64_t sequence_length_ = 0;
  int64_t num_sequences_ = 0;
  int64_t num_users_ = 0;
  bool records_ = false;
};

/// One line of a JSONL text file: {"text": "...", "user": "..." | 123}.
struct TextRecord {
  std::string text;
  std::optional<std::string> user;  ///< as written (numbers as decimal)
  int64_t line = 0;                 ///< 1-based line in the file
};

/// Reads a JSONL file: one JSON object per non-blank line with a string
/// "text" and an optional "user" (string or integer); other fields are
/// ignored. Throws DatasetError naming the file and line for a line that is
/// not a JSON object, lacks "text" or has a "text"/"user" of the wrong type,
/// and for a file with no record.
std::vector<TextRecord> read_jsonl(const std::string& path);

}  // namespace dptrain::datasets
