#include "dptrain/datasets/dataset_info.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "dataset_files.h"
#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/idx_reader.h"
#include "test_util.h"

namespace dptrain::datasets {
namespace {

using namespace testing;  // NOLINT: the file writers
using ::testing::HasSubstr;

TEST(DatasetInfo, DescribesIdxFolder) {
  TempDir dir;
  write_gzip(dir.file("train-images-idx3-ubyte.gz"), idx_images(3, 28, 28));
  write_gzip(dir.file("train-labels-idx1-ubyte.gz"), idx_labels({9, 0, 9}));
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_images(1, 28, 28));
  write_file(dir.file("t10k-labels-idx1-ubyte"), idx_labels({4}));
  EXPECT_EQ(detect_format(dir.path()), DatasetFormat::kIdx);
  const auto s = describe_dataset(dir.path());
  EXPECT_EQ(s.path, dir.path());
  EXPECT_EQ(s.format, "idx");
  ASSERT_EQ(s.splits.size(), 2u);
  EXPECT_EQ(s.splits[0].first, "train");
  EXPECT_EQ(s.splits[1].first, "test");
  const SplitSummary& train = s.splits[0].second;
  EXPECT_EQ(train.count, 3);
  EXPECT_EQ(train.shape, (std::array<std::int64_t, 3>{1, 28, 28}));
  EXPECT_EQ(train.classes, 10);
  EXPECT_EQ(train.class_counts,
            (std::vector<std::int64_t>{1, 0, 0, 0, 0, 0, 0, 0, 0, 2}));
  EXPECT_EQ(s.splits[1].second.count, 1);
}

TEST(DatasetInfo, DescribesCifarFolders) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("c100"));
  write_file(dir.file("c100/test.bin"), cifar_records({{1, 50}, {1, 50}}));
  std::filesystem::create_directories(dir.file("c10/cifar-10-batches-bin"));
  write_file(dir.file("c10/cifar-10-batches-bin/test_batch.bin"),
             cifar_records({{3}}));
  EXPECT_EQ(detect_format(dir.file("c100")), DatasetFormat::kCifar100);
  EXPECT_EQ(detect_format(dir.file("c10")), DatasetFormat::kCifar10);
  const auto s = describe_dataset(dir.file("c100"));
  EXPECT_EQ(s.format, "cifar100");
  ASSERT_EQ(s.splits.size(), 1u);
  EXPECT_EQ(s.splits[0].first, "test");
  EXPECT_EQ(s.splits[0].second.classes, 100);
  EXPECT_EQ(s.splits[0].second.class_counts[50], 2);
  EXPECT_EQ(s.splits[0].second.shape, (std::array<std::int64_t, 3>{3, 32, 32}));
  EXPECT_EQ(list_splits(dir.file("c10")), std::vector<std::string>{"test"});
}

TEST(DatasetInfo, DescribesHdf5FlatAndSplit) {
  TempDir dir;
  {
    H5Writer f(dir.file("flat.h5"));
    f.images("x", 2, 3, 3, 3);
    f.int_vector("y", {1, 1});
    f.int_vector("groups", {0, 1});
    H5Writer g(dir.file("split.hdf5"));
    g.group("train");
    g.group("test");
    g.images("train/images", 2, 2, 2, 1);
    g.int_vector("train/labels", {0, 2});
    g.images("test/images", 1, 2, 2, 1);
    g.int_vector("test/labels", {1});
  }
  const auto flat = describe_dataset(dir.file("flat.h5"));
  EXPECT_EQ(flat.format, "hdf5");
  ASSERT_EQ(flat.splits.size(), 1u);
  EXPECT_EQ(flat.splits[0].first, "all");
  EXPECT_TRUE(flat.splits[0].second.has_groups);
  EXPECT_EQ(flat.splits[0].second.class_counts,
            (std::vector<std::int64_t>{0, 2}));
  const auto split = describe_dataset(dir.file("split.hdf5"));
  ASSERT_EQ(split.splits.size(), 2u);
  EXPECT_EQ(split.splits[0].first, "train");
  EXPECT_EQ(split.splits[0].second.classes, 3);
  EXPECT_EQ(split.splits[1].second.count, 1);
  EXPECT_EQ(load_dataset(dir.file("split.hdf5"), "test").size(), 1);
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { load_dataset(dir.file("split.hdf5"), "all"); }),
              HasSubstr("split \"all\" is not in " + dir.file("split.hdf5") +
                        " (it has: train, test)"));
}

TEST(DatasetInfo, ResolvesFashionMnistAlias) {
  EXPECT_EQ(resolve_dataset_path("fashion-mnist"), kDefaultFashionMnistDir);
  EXPECT_EQ(resolve_dataset_path("data/fashion-mnist"), "data/fashion-mnist");
  EXPECT_EQ(resolve_dataset_path("/x/d.h5"), "/x/d.h5");
}

TEST(DatasetInfo, RejectsUnknownPaths) {
  TempDir dir;
  EXPECT_THAT(error_of([&] { describe_dataset(dir.file("none")); }),
              HasSubstr(dir.file("none") + ": no such file or folder"));
  EXPECT_THAT(error_of([&] { describe_dataset(dir.path()); }),
              HasSubstr(dir.path() + ": not a recognised data set folder"));
  write_file(dir.file("notes.txt"), {'x'});
  EXPECT_THAT(
      error_of([&] { describe_dataset(dir.file("notes.txt")); }),
      HasSubstr(dir.file("notes.txt") + ": not a recognised data set file"));
  write_file(dir.file("train-images-idx3-ubyte"), idx_images(2, 2, 2));
  write_file(dir.file("train-labels-idx1-ubyte"), idx_labels({0, 1}));
  EXPECT_THAT(
      error_of<std::invalid_argument>(
          [&] { load_dataset(dir.path(), "validation"); }),
      HasSubstr("split must be \"train\" or \"test\", got \"validation\""));
}

// `dptrain data info` once died with std::bad_alloc here: the per-class
// count vector was sized by the largest label.
TEST(DatasetInfo, RefusesHugeHdf5LabelBeforeCounting) {
  TempDir dir;
  {
    H5Writer f(dir.file("d.h5"));
    f.images("x", 2, 2, 2, 1);
    f.int_vector("y", {0, std::int64_t{1} << 40}, H5T_STD_I64LE);
  }
  EXPECT_THAT(error_of([&] { describe_dataset(dir.file("d.h5")); }),
              HasSubstr(dir.file("d.h5") +
                        ": label out of range: dataset \"y\" holds "
                        "1099511627776, above the largest supported label "
                        "65535"));
}

TEST(DatasetInfo, PropagatesFileErrors) {
  TempDir dir;
  write_file(dir.file("train-images-idx3-ubyte"), idx_images(2, 2, 2));
  write_file(dir.file("train-labels-idx1-ubyte"), idx_labels({0, 11}));
  EXPECT_THAT(error_of([&] { describe_dataset(dir.path()); }),
              HasSubstr(dir.file("train-labels-idx1-ubyte") +
                        ": label out of range: example 1 has label 11"));
}

}  // namespace
}  // namespace dptrain::datasets
