#include "dptrain/datasets/text_dataset.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>

#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/tokenizer.h"

namespace dptrain::datasets {
namespace {

void require_sequence_length(int64_t sequence_length) {
  if (sequence_length < 2) {
    throw std::invalid_argument("sequence_length must be >= 2, got " +
                                std::to_string(sequence_length));
  }
}

std::string read_text_file(const std::string& path) {
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
  return bytes.str();
}

}  // namespace

TextDataset::TextDataset(std::string text, int64_t sequence_length)
    : sequence_length_(sequence_length) {
  require_sequence_length(sequence_length);
  num_sequences_ = static_cast<int64_t>(text.size()) / sequence_length;
  if (num_sequences_ == 0) {
    throw std::invalid_argument(
        "text of " + std::to_string(text.size()) +
        " bytes holds no complete sequence of sequence_length " +
        std::to_string(sequence_length));
  }
  tokens_.resize(static_cast<size_t>(num_sequences_ * sequence_length));
  for (size_t i = 0; i < tokens_.size(); ++i) {
    tokens_[i] = static_cast<unsigned char>(text[i]);
  }
}

TextDataset TextDataset::from_file(const std::string& path,
                                   int64_t sequence_length) {
  return TextDataset(read_text_file(path), sequence_length);
}

TextDataset TextDataset::from_file(const std::string& path,
                                   int64_t sequence_length,
                                   const Tokenizer& tokenizer) {
  const auto text = read_text_file(path);
  try {
    return from_tokens(tokenizer.encode(text), sequence_length);
  } catch (const std::invalid_argument& e) {
    throw DatasetError(
        path, std::string(e.what()) + " (tokenizer " + tokenizer.name() + ")");
  }
}

TextDataset TextDataset::from_tokens(const std::vector<std::int32_t>& tokens,
                                     int64_t sequence_length) {
  require_sequence_length(sequence_length);
  TextDataset out;
  out.sequence_length_ = sequence_length;
  out.num_sequences_ = static_cast<int64_t>(tokens.size()) / sequence_length;
  if (out.num_sequences_ == 0) {
    throw std::invalid_argument(
        "text of " + std::to_string(tokens.size()) +
        " tokens holds no complete sequence of sequence_length " +
        std::to_string(sequence_length));
  }
  out.tokens_.assign(tokens.begin(),
                     tokens.begin() + out.num_sequences_ * sequence_length);
  return out;
}

TextDataset TextDataset::from_records(
    const std::vector<std::vector<std::int32_t>>& records,
    int64_t sequence_length, std::int32_t pad_id,
    const std::vector<std::int64_t>* users) {
  require_sequence_length(sequence_length);
  if (records.empty()) throw std::invalid_argument("no records");
  if (users != nullptr && users->size() != records.size()) {
    throw std::invalid_argument("users has " + std::to_string(users->size()) +
                                " entries for " +
                                std::to_string(records.size()) + " records");
  }
  TextDataset out;
  out.sequence_length_ = sequence_length;
  out.num_sequences_ = static_cast<int64_t>(records.size());
  out.records_ = true;
  const auto L = static_cast<size_t>(sequence_length);
  out.tokens_.assign(records.size() * L, pad_id);
  out.lengths_.resize(records.size());
  bool any_padded = false;
  for (size_t r = 0; r < records.size(); ++r) {
    const auto& rec = records[r];
    if (rec.size() < 2) {
      throw std::invalid_argument("record " + std::to_string(r) + " has " +
                                  std::to_string(rec.size()) +
                                  " token(s); at least 2 are needed");
    }
    const auto n = std::min(L, rec.size());
    std::copy(rec.begin(), rec.begin() + static_cast<std::ptrdiff_t>(n),
              out.tokens_.begin() + static_cast<std::ptrdiff_t>(r * L));
    out.lengths_[r] = static_cast<std::int32_t>(n);
    any_padded = any_padded || n < L;
  }
  if (!any_padded) out.lengths_.clear();
  if (users != nullptr) {
    out.users_ = *users;
    for (const auto u : out.users_) {
      if (u < 0) throw std::invalid_argument("user indices must be >= 0");
      out.num_users_ = std::max(out.num_users_, u + 1);
    }
  }
  return out;
}

int64_t TextDataset::num_valid_tokens() const {
  if (lengths_.empty()) return num_bytes();
  int64_t n = 0;
  for (const auto l : lengths_) n += l;
  return n;
}

std::int32_t TextDataset::max_id() const {
  std::int32_t m = -1;
  for (const auto t : tokens_) m = std::max(m, t);
  return m;
}

void TextDataset::check_index(int64_t i) const {
  if (i < 0 || i >= num_sequences_) {
    throw std::out_of_range("sequence index must be in [0, " +
                            std::to_string(num_sequences_) + "), got " +
                            std::to_string(i));
  }
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
    check_index(i);
    const auto* src = tokens_.data() + i * sequence_length_;
    std::copy(src, src + sequence_length_, dst + r * sequence_length_);
  }
  return out;
}

int64_t TextDataset::length(int64_t index) const {
  check_index(index);
  return lengths_.empty() ? sequence_length_
                          : lengths_[static_cast<size_t>(index)];
}

at::Tensor TextDataset::lengths(const std::vector<int64_t>& indices) const {
  auto out = torch::empty({static_cast<int64_t>(indices.size())}, torch::kLong);
  auto* dst = out.data_ptr<int64_t>();
  for (size_t r = 0; r < indices.size(); ++r) dst[r] = length(indices[r]);
  return out;
}

int64_t TextDataset::user_of(int64_t index) const {
  check_index(index);
  if (users_.empty()) {
    throw std::logic_error("this text data set has no users");
  }
  return users_[static_cast<size_t>(index)];
}

std::vector<std::vector<int64_t>> TextDataset::sequences_by_user() const {
  std::vector<std::vector<int64_t>> by_user(static_cast<size_t>(num_users_));
  for (size_t i = 0; i < users_.size(); ++i) {
    by_user[static_cast<size_t>(users_[i])].push_back(static_cast<int64_t>(i));
  }
  return by_user;
}

TextDataset TextDataset::slice(int64_t begin, int64_t end) const {
  if (begin < 0 || end > num_sequences_ || begin >= end) {
    throw std::out_of_range("slice [" + std::to_string(begin) + ", " +
                            std::to_string(end) +
                            ") must be a non-empty part "
                            "of [0, " +
                            std::to_string(num_sequences_) + ")");
  }
  std::vector<int64_t> indices;
  for (auto i = begin; i < end; ++i) indices.push_back(i);
  return subset(indices);
}

TextDataset TextDataset::subset(const std::vector<int64_t>& indices) const {
  TextDataset out;
  out.sequence_length_ = sequence_length_;
  out.num_sequences_ = static_cast<int64_t>(indices.size());
  out.records_ = records_;
  const auto L = static_cast<size_t>(sequence_length_);
  out.tokens_.reserve(indices.size() * L);
  std::map<int64_t, int64_t> renumber;
  bool any_padded = false;
  for (const auto i : indices) {
    check_index(i);
    const auto* src = tokens_.data() + static_cast<size_t>(i) * L;
    out.tokens_.insert(out.tokens_.end(), src, src + L);
    const auto len = static_cast<std::int32_t>(length(i));
    out.lengths_.push_back(len);
    any_padded = any_padded || len < sequence_length_;
    if (!users_.empty()) {
      const auto it = renumber
                          .emplace(users_[static_cast<size_t>(i)],
                                   static_cast<int64_t>(renumber.size()))
                          .first;
      out.users_.push_back(it->second);
    }
  }
  if (!any_padded) out.lengths_.clear();
  out.num_users_ = static_cast<int64_t>(renumber.size());
  return out;
}

std::vector<TextRecord> read_jsonl(const std::string& path) {
  const auto text = read_text_file(path);
  std::vector<TextRecord> records;
  std::istringstream lines(text);
  std::string line;
  int64_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const auto where = "line " + std::to_string(number) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw DatasetError(path, where + "not JSON (" + e.what() + ")");
    }
    if (!j.is_object()) {
      throw DatasetError(path, where + "expected a JSON object per line");
    }
    const auto t = j.find("text");
    if (t == j.end()) throw DatasetError(path, where + "has no \"text\" field");
    if (!t->is_string()) {
      throw DatasetError(path, where + "\"text\" must be a string");
    }
    TextRecord rec;
    rec.text = t->get<std::string>();
    rec.line = number;
    const auto u = j.find("user");
    if (u != j.end() && !u->is_null()) {
      if (u->is_string()) {
        rec.user = u->get<std::string>();
      } else if (u->is_number_integer()) {
        rec.user = u->dump();
      } else {
        throw DatasetError(path,
                           where + "\"user\" must be a string or an integer");
      }
    }
    records.push_back(std::move(rec));
  }
  if (records.empty()) throw DatasetError(path, "holds no record");
  return records;
}

}  // namespace dptrain::datasets
