#include "dptrain/datasets/text_dataset.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "dptrain/datasets/errors.h"
#include "error_helpers.h"

namespace ds = dptrain::datasets;

namespace {
using dptrain::test_support::error_of;
}  // namespace

TEST(TextDataset, CutsNonOverlappingSequencesAndDropsTail) {
  ds::TextDataset data("abcdefghij", 3);  // "abc" "def" "ghi", tail "j"
  EXPECT_EQ(data.size(), 3);
  EXPECT_EQ(data.num_bytes(), 9);
  auto row = data.get(1);
  EXPECT_TRUE(torch::equal(row, torch::tensor({'d', 'e', 'f'}, torch::kLong)));
  auto b = data.batch({2, 0});
  EXPECT_EQ(b.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(b[0][0].item<int64_t>(), 'g');
  EXPECT_EQ(b[1][2].item<int64_t>(), 'c');
  EXPECT_EQ(data.batch({}).size(0), 0);
  auto tail = data.slice(1, 3);
  EXPECT_EQ(tail.size(), 2);
  EXPECT_EQ(tail.get(0)[0].item<int64_t>(), 'd');
}

TEST(TextDataset, BytesAboveSevenBitsStayInVocabulary) {
  ds::TextDataset data(std::string("\xff\x80\x01\x00", 4), 2);
  auto b = data.batch({0, 1});
  EXPECT_EQ(b[0][0].item<int64_t>(), 255);
  EXPECT_EQ(b[0][1].item<int64_t>(), 128);
  EXPECT_EQ(b[1][1].item<int64_t>(), 0);
}

TEST(TextDataset, ReadsFile) {
  const std::string path = testing::TempDir() + "/text_dataset_test.txt";
  {
    std::ofstream out(path, std::ios::binary);
    out << "hello world!";
  }
  auto data = ds::TextDataset::from_file(path, 4);
  EXPECT_EQ(data.size(), 3);
  EXPECT_EQ(data.get(2)[3].item<int64_t>(), '!');
  std::remove(path.c_str());
}

TEST(TextDataset, ErrorsNameValues) {
  EXPECT_EQ(error_of([] { ds::TextDataset("abc", 1); }),
            "sequence_length must be >= 2, got 1");
  EXPECT_EQ(error_of([] { ds::TextDataset("abc", 4); }),
            "text of 3 bytes holds no complete sequence of sequence_length 4");
  EXPECT_EQ(
      error_of([] { ds::TextDataset::from_file("/nonexistent/t.txt", 4); }),
      "/nonexistent/t.txt: cannot open text file");
  // A folder opens as a stream of 0 bytes; it once read as "text of 0 bytes".
  const std::string dir = testing::TempDir();
  EXPECT_EQ(
      error_of<ds::DatasetError>([&] { ds::TextDataset::from_file(dir, 4); }),
      dir + ": is a folder, expected a text file");
  ds::TextDataset data("abcdef", 2);
  EXPECT_EQ(error_of([&] {
              data.batch({0, 3});
            }),
            "sequence index must be in [0, 3), got 3");
  EXPECT_EQ(error_of([&] { data.slice(2, 2); }),
            "slice [2, 2) must be a non-empty part of [0, 3)");
}

TEST(TextRecords, PadsCutsAndKeepsValidLengths) {
  const std::vector<std::vector<int32_t>> records = {
      {5, 6, 7, 8, 9, 10}, {1, 2}, {3, 4, 5, 6}};
  const auto data = ds::TextDataset::from_records(records, 4, /*pad_id=*/0);
  EXPECT_TRUE(data.records());
  EXPECT_TRUE(data.padded());
  EXPECT_EQ(data.size(), 3);
  EXPECT_TRUE(
      torch::equal(data.get(0), torch::tensor({5, 6, 7, 8}, torch::kLong)))
      << "a longer record is cut to its first L tokens";
  EXPECT_TRUE(
      torch::equal(data.get(1), torch::tensor({1, 2, 0, 0}, torch::kLong)))
      << "a shorter one is padded with pad_id";
  EXPECT_TRUE(torch::equal(data.lengths({0, 1, 2}),
                           torch::tensor({4, 2, 4}, torch::kLong)));
  EXPECT_EQ(data.num_valid_tokens(), 10);
  EXPECT_EQ(data.max_id(), 8);
  EXPECT_EQ(error_of([&] { ds::TextDataset::from_records({{1}}, 4, 0); }),
            "record 0 has 1 token(s); at least 2 are needed");
  // No record shorter than L: nothing is padded.
  EXPECT_FALSE(ds::TextDataset::from_records({{1, 2, 3}}, 3, 0).padded());
}

TEST(TextRecords, UsersGroupTheirSequencesAndSubsetsRenumberThem) {
  const std::vector<std::vector<int32_t>> records = {
      {1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}};
  const std::vector<int64_t> users = {2, 0, 2, 1, 0};
  const auto data = ds::TextDataset::from_records(records, 2, 0, &users);
  EXPECT_EQ(data.num_users(), 3);
  EXPECT_EQ(data.user_of(2), 2);
  const auto by_user = data.sequences_by_user();
  ASSERT_EQ(by_user.size(), 3u);
  EXPECT_EQ(by_user[0], (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(by_user[1], (std::vector<int64_t>{3}));
  EXPECT_EQ(by_user[2], (std::vector<int64_t>{0, 2}));
  // Users 2 and 1 only, renumbered 0 and 1 in order of appearance.
  const auto part = data.subset({0, 2, 3});
  EXPECT_EQ(part.num_users(), 2);
  EXPECT_EQ(part.user_of(0), 0);
  EXPECT_EQ(part.user_of(1), 0);
  EXPECT_EQ(part.user_of(2), 1);
  EXPECT_EQ(part.get(2)[0].item<int64_t>(), 7);
  EXPECT_TRUE(part.records());
  const std::vector<int64_t> short_users = {0};
  EXPECT_EQ(error_of([&] {
              ds::TextDataset::from_records(records, 2, 0, &short_users);
            }),
            "users has 1 entries for 5 records");
}

TEST(TextRecords, JsonlLinesAreReadAndBadLinesNamed) {
  const std::string path = testing::TempDir() + "/records_test.jsonl";
  const auto write = [&](const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  };
  write(
      "{\"text\": \"hello\", \"user\": \"ann\", \"id\": 3}\n"
      "\n"
      "{\"text\": \"w\\u00f6rld\", \"user\": 17}\r\n"
      "{\"text\": \"no user\"}\n");
  const auto records = ds::read_jsonl(path);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].text, "hello");
  EXPECT_EQ(*records[0].user, "ann");
  EXPECT_EQ(records[1].text, "w\xc3\xb6rld");
  EXPECT_EQ(*records[1].user, "17");
  EXPECT_EQ(records[1].line, 3);
  EXPECT_FALSE(records[2].user.has_value());

  const auto error = [&](const std::string& text) {
    write(text);
    return error_of<ds::DatasetError>([&] { ds::read_jsonl(path); });
  };
  EXPECT_EQ(error("{\"text\": \"a\"}\n[1, 2]\n"),
            path + ": line 2: expected a JSON object per line");
  EXPECT_EQ(error("{\"txt\": \"a\"}\n"),
            path + ": line 1: has no \"text\" field");
  EXPECT_EQ(error("{\"text\": 5}\n"),
            path + ": line 1: \"text\" must be a string");
  EXPECT_EQ(error("{\"text\": \"a\", \"user\": 1.5}\n"),
            path + ": line 1: \"user\" must be a string or an integer");
  EXPECT_EQ(error("\n\n"), path + ": holds no record");
  EXPECT_NE(error("{\"text\": \"a\"\n").find(path + ": line 1: not JSON"),
            std::string::npos);
  std::remove(path.c_str());
}
