// Tokenizers for language models: bytes (vocabulary 256, the default of the
// tiny models) or a SentencePiece model file (e.g. RecurrentGemma's Gemma
// tokenizer.model). Torch-free.
//
//   auto tok = datasets::load_tokenizer("tokenizer.model");   // or ""
//   std::vector<int32_t> ids = tok->encode("Hello");
//   tok->decode(ids) == "Hello"
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dptrain::datasets {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// "bytes" or "sentencepiece:<file>".
  virtual std::string name() const = 0;
  /// Number of ids; every id encode() returns is in [0, vocab_size()).
  virtual std::int64_t vocab_size() const = 0;
  virtual std::vector<std::int32_t> encode(const std::string& text) const = 0;
  /// Throws std::invalid_argument naming the first id outside the vocabulary.
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  /// The beginning-of-sequence id a record starts with, or −1 for none
  /// (bytes have none).
  virtual std::int32_t bos_id() const { return -1; }
  /// The end-of-sequence id generation stops at, or −1 for none.
  virtual std::int32_t eos_id() const { return -1; }
  /// The id that pads a record shorter than the sequence length (its
  /// positions carry no loss): SentencePiece's pad, else its eos, else 0.
  virtual std::int32_t pad_id() const { return 0; }
  /// The model file's bytes, to store beside trained weights so that
  /// `generate` needs no separate file; empty for bytes.
  virtual std::string serialized() const { return {}; }
};

/// Each byte is one id (vocabulary 256).
std::unique_ptr<Tokenizer> byte_tokenizer();

/// A SentencePiece model file (tokenizer.model). Throws DatasetError naming
/// the file when it is missing or not a SentencePiece model.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& path);

/// A SentencePiece model from serialized() bytes; `label` names it in
/// errors and in name().
std::unique_ptr<Tokenizer> sentencepiece_from_bytes(const std::string& bytes,
                                                    const std::string& label);

/// `path` empty or "bytes": byte_tokenizer(); otherwise load_sentencepiece.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

/// Trains a SentencePiece model: `args` as spm_train's command line, e.g.
/// "--input=corpus.txt --model_prefix=sp --vocab_size=1000". Throws
/// std::invalid_argument with SentencePiece's message.
void train_sentencepiece(const std::string& args);

// SentencePiece is reached through libdptrain_sentencepiece.so, loaded on
// first use in a link-map namespace of its own (dlmopen: Debian's
// libsentencepiece carries its own
// protobuf, which clashes with LibTorch's when linked into one program).
// Its path: $DPTRAIN_SENTENCEPIECE_SHIM, else the installed library, else
// the build tree's. Without it, the SentencePiece functions throw
// DatasetError saying so; bytes need nothing.

}  // namespace dptrain::datasets
