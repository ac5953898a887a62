// Tokenizers: bytes, and SentencePiece models that the test trains itself
// (with libsentencepiece_train) on text it writes.
#include "dptrain/datasets/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/text_dataset.h"
#include "error_helpers.h"
#include "sentencepiece_model.h"

namespace ds = dptrain::datasets;
namespace fs = std::filesystem;

namespace {
using dptrain::test_support::error_of;
using dptrain::test_support::train_sentencepiece;

}  // namespace

TEST(Tokenizer, BytesAreTheirOwnIds) {
  const auto tok = ds::byte_tokenizer();
  EXPECT_EQ(tok->name(), "bytes");
  EXPECT_EQ(tok->vocab_size(), 256);
  const auto ids = tok->encode(std::string("a\xff", 2));
  EXPECT_EQ(ids, (std::vector<int32_t>{97, 255}));
  EXPECT_EQ(tok->decode(ids), std::string("a\xff", 2));
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(error_of([&] { tok->decode({300}); }),
            "byte tokenizer: id 300 is not a byte (0..255)");
  EXPECT_EQ(ds::load_tokenizer("")->name(), "bytes");
}

TEST(Tokenizer, SentencePieceModelRoundTripsAndTravelsAsBytes) {
  const auto dir = testing::TempDir() + "/tokenizer_test_sp";
  const auto model = train_sentencepiece(dir, 60);
  const auto tok = ds::load_tokenizer(model);
  EXPECT_EQ(tok->name(), "sentencepiece:" + model);
  EXPECT_EQ(tok->vocab_size(), 60);
  const std::string text = "the dog sat on the mat";
  const auto ids = tok->encode(text);
  // Pieces: fewer ids than bytes, all inside the vocabulary.
  EXPECT_LT(ids.size(), text.size());
  for (const auto id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 60);
  }
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_GE(tok->bos_id(), 0);  // SentencePiece's default <s>
  EXPECT_GE(tok->eos_id(), 0);
  // The serialized model (stored with trained weights) is the same model.
  const auto again = ds::sentencepiece_from_bytes(tok->serialized(), "stored");
  EXPECT_EQ(again->encode(text), ids);
  EXPECT_EQ(again->name(), "sentencepiece:stored");
  EXPECT_NE(error_of([&] {
              tok->decode({60});
            }).find("id 60 is outside the vocabulary [0, 60)"),
            std::string::npos);

  // A text file through the tokenizer: whole sequences of ids.
  { std::ofstream(dir + "/t.txt") << "the cat sat on the mat and the dog"; }
  const auto data = ds::TextDataset::from_file(dir + "/t.txt", 3, *tok);
  const auto all = tok->encode("the cat sat on the mat and the dog");
  EXPECT_EQ(data.size(), static_cast<int64_t>(all.size() / 3));
  EXPECT_EQ(data.get(1)[0].item<int64_t>(), all[3]);
  fs::remove_all(dir);
}

TEST(Tokenizer, MissingOrBadModelFilesAreNamed) {
  const auto dir = testing::TempDir() + "/tokenizer_test_bad";
  fs::create_directories(dir);
  EXPECT_EQ(error_of<ds::DatasetError>(
                [&] { ds::load_tokenizer(dir + "/none.model"); }),
            dir +
                "/none.model: no such file (expected a SentencePiece "
                "tokenizer.model)");
  EXPECT_EQ(error_of<ds::DatasetError>([&] { ds::load_tokenizer(dir); }),
            dir +
                ": is not a regular file (expected a SentencePiece "
                "tokenizer.model)");
  { std::ofstream(dir + "/junk.model") << "not a protobuf at all"; }
  EXPECT_NE(error_of<ds::DatasetError>([&] {
              ds::load_tokenizer(dir + "/junk.model");
            }).find(dir + "/junk.model: not a SentencePiece model"),
            std::string::npos);
  fs::remove_all(dir);
}
