#include "dptrain/datasets/idx_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "dataset_files.h"
#include "dptrain/datasets/errors.h"
#include "test_util.h"

namespace dptrain::datasets {
namespace {

using namespace testing;  // NOLINT: the file writers
using ::testing::HasSubstr;

// n single-channel h×w images with the writers' pixel pattern.
void expect_pattern(const ImageDataset& d, std::int64_t n, std::int64_t h,
                    std::int64_t w) {
  ASSERT_EQ(d.size(), n);
  expect_pixel_pattern(d, 1, h, w);
}

TEST(IdxReader, ReadsRawFiles) {
  TempDir dir;
  write_file(dir.file("img"), idx_images(3, 4, 5));
  write_file(dir.file("lab"), idx_labels({2, 0, 1}));
  const ImageDataset d = load_idx(dir.file("img"), dir.file("lab"), 3);
  expect_pattern(d, 3, 4, 5);
  EXPECT_EQ(d.num_classes(), 3);
  EXPECT_EQ(d.get(0).label, 2);
  EXPECT_EQ(d.get(2).label, 1);
  EXPECT_FALSE(d.has_groups());
}

TEST(IdxReader, ReadsGzipFiles) {
  TempDir dir;
  write_gzip(dir.file("img.gz"), idx_images(4, 2, 3));
  write_gzip(dir.file("lab.gz"), idx_labels({1, 1, 0, 4}));
  const ImageDataset d = load_idx(dir.file("img.gz"), dir.file("lab.gz"));
  expect_pattern(d, 4, 2, 3);
  EXPECT_EQ(d.num_classes(), 5);  // inferred: max label + 1
  EXPECT_EQ(d.class_counts(), (std::vector<std::int64_t>{1, 2, 0, 0, 1}));
}

TEST(IdxReader, RejectsMissingFile) {
  TempDir dir;
  write_file(dir.file("lab"), idx_labels({0}));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("nope"), dir.file("lab")); }),
              HasSubstr(dir.file("nope") + ": no such file"));
  EXPECT_THAT(error_of([&] { load_idx(dir.path(), dir.file("lab")); }),
              HasSubstr(dir.path() + ": is a folder"));
}

TEST(IdxReader, RejectsWrongMagic) {
  TempDir dir;
  auto img = idx_images(1, 2, 2);
  img[2] = 0x42;
  write_file(dir.file("img"), img);
  write_file(dir.file("lab"), idx_labels({0}));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("img"), dir.file("lab")); }),
              HasSubstr(dir.file("img") + ": wrong magic 0x00004203"));
}

TEST(IdxReader, RejectsTruncatedData) {
  TempDir dir;
  auto img = idx_images(3, 4, 4);
  img.resize(img.size() - 5);
  write_file(dir.file("img"), img);
  write_file(dir.file("lab"), idx_labels({0, 1, 2}));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("img"), dir.file("lab")); }),
              HasSubstr(dir.file("img") +
                        ": truncated data: header "
                        "dimensions [3, 4, 4] need 48 bytes of data, the "
                        "file has 43"));
}

TEST(IdxReader, RejectsHeaderDisagreeingWithFileSize) {
  TempDir dir;
  auto img = idx_images(2, 3, 3);
  img[7] = 5;  // N: 2 -> 5, the file holds 2 images
  write_file(dir.file("img"), img);
  write_file(dir.file("lab"), idx_labels({0, 1}));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("img"), dir.file("lab")); }),
              HasSubstr("header dimensions [5, 3, 3] need 45 bytes of data, "
                        "the file has 18"));
}

TEST(IdxReader, RejectsTruncatedGzipStream) {
  TempDir dir;
  write_gzip(dir.file("full.gz"), idx_images(50, 8, 8));
  auto gz = read_bytes(dir.file("full.gz"));
  gz.resize(gz.size() / 2);
  write_file(dir.file("img.gz"), gz);
  write_file(dir.file("lab"), idx_labels(Bytes(50, 0)));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("img.gz"), dir.file("lab")); }),
              HasSubstr(dir.file("img.gz") +
                        ": truncated or corrupt gzip data: unexpected end of "
                        "file"));
  // A corrupted deflate stream (garbage after the gzip header).
  gz = read_bytes(dir.file("full.gz"));
  for (std::size_t i = 20; i < 60; ++i) gz[i] ^= 0x5a;
  write_file(dir.file("bad.gz"), gz);
  EXPECT_THAT(
      error_of([&] { load_idx(dir.file("bad.gz"), dir.file("lab")); }),
      HasSubstr(dir.file("bad.gz") + ": truncated or corrupt gzip data"));
}

TEST(IdxReader, RejectsCountMismatch) {
  TempDir dir;
  write_file(dir.file("img"), idx_images(3, 2, 2));
  write_file(dir.file("lab"), idx_labels({0, 1}));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("img"), dir.file("lab")); }),
              HasSubstr(dir.file("img") +
                        ": image/label count mismatch: 3 "
                        "images, but " +
                        dir.file("lab") + " has 2 labels"));
}

TEST(IdxReader, RejectsLabelOutOfRange) {
  TempDir dir;
  write_file(dir.file("img"), idx_images(3, 2, 2));
  write_file(dir.file("lab"), idx_labels({0, 10, 1}));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("img"), dir.file("lab"), 10); }),
              HasSubstr(dir.file("lab") + ": label out of range: example 1 "
                                          "has label 10, expected 0..9"));
}

TEST(IdxReader, RejectsWrongTypeAndRank) {
  TempDir dir;
  write_file(dir.file("img"), idx_images(2, 2, 2));
  write_file(dir.file("lab"), idx_labels({0, 1}));
  write_file(dir.file("img_i32"), idx_bytes(0x0C, {1, 1, 1}, {0, 0, 0, 1}));
  write_file(dir.file("img_2d"), idx_bytes(0x08, {2, 4}, Bytes(8, 1)));
  write_file(dir.file("lab_2d"), idx_bytes(0x08, {2, 1}, {0, 1}));
  EXPECT_THAT(
      error_of([&] { load_idx(dir.file("img_i32"), dir.file("lab")); }),
      HasSubstr(dir.file("img_i32") + ": an image file must have "
                                      "element type uint8 (0x08), got 0x0c"));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("img_2d"), dir.file("lab")); }),
              HasSubstr(dir.file("img_2d") + ": an image file must have 3 "
                                             "dimensions [N, H, W], got 2"));
  EXPECT_THAT(error_of([&] { load_idx(dir.file("img"), dir.file("lab_2d")); }),
              HasSubstr(dir.file("lab_2d") + ": a label file must have 1 "
                                             "dimension [N], got 2"));
}

TEST(IdxReader, RejectsNegativeNumClasses) {
  EXPECT_THROW(load_idx("a", "b", -1), std::invalid_argument);
}

TEST(FashionMnistReader, FindsGzipAndRawNamesInFolder) {
  TempDir dir;
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(4, 28, 28));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels({9, 0, 3, 3}));
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_images(2, 28, 28));
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_labels({1, 2}));
  const auto train = load_fashion_mnist(dir.path(), Split::kTrain);
  const auto test = load_fashion_mnist(dir.path(), Split::kTest);
  EXPECT_EQ(train.size(), 4);
  EXPECT_EQ(test.size(), 2);
  EXPECT_EQ(train.num_classes(), 10);
  EXPECT_EQ(train.get(0).label, 9);
  EXPECT_TRUE(has_idx_split(dir.path(), Split::kTrain));
}

TEST(FashionMnistReader, NamesFolderAndFilesWhenAbsent) {
  TempDir dir;
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(1, 28, 28));
  EXPECT_FALSE(has_idx_split(dir.path(), Split::kTrain));
  EXPECT_THAT(error_of([&] { load_fashion_mnist(dir.path(), Split::kTrain); }),
              HasSubstr(dir.path() +
                        ": missing file: none of "
                        "train-labels-idx1-ubyte.gz, train-labels-idx1-ubyte"));
  EXPECT_THAT(error_of([&] { load_fashion_mnist(dir.file("none")); }),
              HasSubstr(dir.file("none") + ": no such folder"));
}

TEST(FashionMnistReader, ReadsInstalledDataSet) {
  if (!std::filesystem::exists(kDefaultFashionMnistDir)) {
    GTEST_SKIP() << kDefaultFashionMnistDir << " is not installed";
  }
  const auto train = load_fashion_mnist();
  const auto test = load_fashion_mnist(kDefaultFashionMnistDir, Split::kTest);
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(train.shape(), (std::array<std::int64_t, 3>{1, 28, 28}));
  EXPECT_EQ(train.num_classes(), 10);
  // Fashion-MNIST is balanced: 6000 and 1000 examples per class.
  EXPECT_EQ(train.class_counts(), std::vector<std::int64_t>(10, 6000));
  EXPECT_EQ(test.class_counts(), std::vector<std::int64_t>(10, 1000));
  // The first training example is an ankle boot (class 9), per the
  // data set's documentation and every loader's first row.
  EXPECT_EQ(train.get(0).label, 9);
}

}  // namespace
}  // namespace dptrain::datasets
