#include "dptrain/datasets/cifar_reader.h"

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

void expect_image(const ImageDataset& d, std::int64_t i, std::size_t pattern) {
  auto acc = d.images().accessor<uint8_t, 4>();
  for (std::int64_t c = 0; c < 3; ++c)
    for (std::int64_t y = 0; y < 32; ++y)
      for (std::int64_t x = 0; x < 32; ++x)
        ASSERT_EQ(acc[i][c][y][x], pixel(pattern, c, y, x));
}

TEST(CifarParser, ExtractsLabelsAndImages) {
  const auto b = cifar_records({{3}, {9}});
  const CifarRecords r =
      parse_cifar(b.data(), b.size(), "buf", CifarVariant::kCifar10);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.labels, (std::vector<std::int64_t>{3, 9}));
  EXPECT_EQ(r.image(1), b.data() + 3073 + 1);
}

TEST(CifarParser, PicksFineOrCoarseLabel) {
  const auto b = cifar_records({{19, 99}, {0, 42}});
  EXPECT_EQ(
      parse_cifar(b.data(), b.size(), "buf", CifarVariant::kCifar100).labels,
      (std::vector<std::int64_t>{99, 42}));
  EXPECT_EQ(parse_cifar(b.data(), b.size(), "buf", CifarVariant::kCifar100,
                        CifarLabel::kCoarse)
                .labels,
            (std::vector<std::int64_t>{19, 0}));
}

TEST(CifarParser, RejectsEmptyTruncatedAndOutOfRange) {
  const std::uint8_t one = 0;
  EXPECT_THAT(
      error_of([&] { parse_cifar(&one, 0, "buf", CifarVariant::kCifar10); }),
      HasSubstr("buf: empty CIFAR-10 file"));
  auto b = cifar_records({{1}, {2}});
  EXPECT_THAT(error_of([&] {
                parse_cifar(b.data(), b.size() - 1, "buf",
                            CifarVariant::kCifar10);
              }),
              HasSubstr("buf: truncated data: 6145 bytes is not a whole number "
                        "of CIFAR-10 records of 3073 bytes (1 whole records "
                        "and 3072 bytes left over)"));
  b = cifar_records({{1}, {10}});
  EXPECT_THAT(error_of([&] {
                parse_cifar(b.data(), b.size(), "buf", CifarVariant::kCifar10);
              }),
              HasSubstr("buf: label out of range: record 1 has label 10, "
                        "expected 0..9"));
  b = cifar_records({{20, 5}});
  EXPECT_THAT(error_of([&] {
                parse_cifar(b.data(), b.size(), "buf", CifarVariant::kCifar100,
                            CifarLabel::kCoarse);
              }),
              HasSubstr("label 20, expected 0..19"));
  b = cifar_records({{2, 100}});
  EXPECT_THAT(error_of([&] {
                parse_cifar(b.data(), b.size(), "buf", CifarVariant::kCifar100);
              }),
              HasSubstr("label 100, expected 0..99"));
}

// Writes a CIFAR-10 folder: data_batch_b holds 2 images (labels b, b+1 mod
// 10) numbered 2(b-1), 2(b-1)+1; test_batch holds 3.
void write_cifar10(const std::string& dir) {
  std::filesystem::create_directories(dir);
  for (int b = 1; b <= 5; ++b) {
    write_file(dir + "/data_batch_" + std::to_string(b) + ".bin",
               cifar_records({{static_cast<std::uint8_t>(b)},
                              {static_cast<std::uint8_t>((b + 1) % 10)}},
                             2 * (b - 1)));
  }
  write_file(dir + "/test_batch.bin", cifar_records({{0}, {1}, {2}}, 100));
}

TEST(CifarReader, ReadsCifar10FolderInBatchOrder) {
  TempDir dir;
  write_cifar10(dir.path());
  const auto train = load_cifar10(dir.path(), Split::kTrain);
  const auto test = load_cifar10(dir.path(), Split::kTest);
  ASSERT_EQ(train.size(), 10);
  EXPECT_EQ(test.size(), 3);
  EXPECT_EQ(train.shape(), (std::array<std::int64_t, 3>{3, 32, 32}));
  EXPECT_EQ(train.num_classes(), 10);
  EXPECT_EQ(train.get(0).label, 1);
  EXPECT_EQ(train.get(9).label, 6);
  expect_image(train, 0, 0);
  expect_image(train, 7, 7);
  expect_image(test, 2, 102);
}

TEST(CifarReader, FindsStandardSubfolder) {
  TempDir dir;
  write_cifar10(dir.file("cifar-10-batches-bin"));
  EXPECT_EQ(find_cifar_dir(dir.path(), CifarVariant::kCifar10),
            dir.file("cifar-10-batches-bin"));
  EXPECT_EQ(load_cifar10(dir.path(), Split::kTest).size(), 3);
  EXPECT_EQ(find_cifar_dir(dir.path(), CifarVariant::kCifar100), "");
}

TEST(CifarReader, ReadsCifar100FineByDefault) {
  TempDir dir;
  write_file(dir.file("train.bin"), cifar_records({{3, 77}, {19, 5}, {3, 76}}));
  write_file(dir.file("test.bin"), cifar_records({{0, 0}}));
  const auto fine = load_cifar100(dir.path());
  EXPECT_EQ(fine.num_classes(), 100);
  EXPECT_EQ(fine.get(0).label, 77);
  EXPECT_EQ(fine.get(1).label, 5);
  expect_image(fine, 2, 2);
  const auto coarse =
      load_cifar100(dir.path(), Split::kTrain, CifarLabel::kCoarse);
  EXPECT_EQ(coarse.num_classes(), 20);
  EXPECT_EQ(coarse.get(1).label, 19);
  EXPECT_EQ(load_cifar100(dir.path(), Split::kTest).size(), 1);
}

TEST(CifarReader, NamesTheBadFile) {
  TempDir dir;
  write_cifar10(dir.path());
  auto b = cifar_records({{1}});
  b.resize(100);
  write_file(dir.file("data_batch_3.bin"), b);
  EXPECT_THAT(error_of([&] { load_cifar10(dir.path()); }),
              HasSubstr(dir.file("data_batch_3.bin") + ": truncated data"));
  std::filesystem::remove(dir.file("data_batch_4.bin"));
  EXPECT_THAT(
      error_of([&] { load_cifar10(dir.path()); }),
      HasSubstr(dir.path() + ": missing file: none of data_batch_4.bin"));
  write_file(dir.file("data_batch_3.bin"), {});
  EXPECT_THAT(
      error_of([&] {
        load_cifar_files({dir.file("data_batch_3.bin")},
                         CifarVariant::kCifar10);
      }),
      HasSubstr(dir.file("data_batch_3.bin") + ": empty CIFAR-10 file"));
  EXPECT_THAT(error_of([&] {
                load_cifar_files({dir.file("nope.bin")},
                                 CifarVariant::kCifar10);
              }),
              HasSubstr(dir.file("nope.bin") + ": no such file"));
  EXPECT_THAT(error_of([&] { load_cifar100(dir.file("none")); }),
              HasSubstr(dir.file("none") + ": no such folder"));
}

}  // namespace
}  // namespace dptrain::datasets
