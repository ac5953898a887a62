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
