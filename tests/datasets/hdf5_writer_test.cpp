// The writer of synthetic data sets: what it writes, load_hdf5 (and
// load_dataset, as `dptrain train --dataset S.h5` calls it) reads back equal.
#include "dptrain/datasets/hdf5_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <filesystem>

#include "dataset_files.h"
#include "dptrain/datasets/dataset_info.h"
#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/hdf5_reader.h"

namespace dptrain::datasets {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;  // dataset_files.h

ImageDataset random_set(int64_t n, int64_t c, int64_t h, int64_t w,
                        int64_t classes, bool groups, uint64_t seed) {
  torch::manual_seed(seed);
  auto images = torch::randint(0, 256, {n, c, h, w}, torch::kUInt8);
  auto labels = torch::randint(0, classes, {n}, torch::kLong);
  labels[0] = classes - 1;  // the reader infers the count from the labels
  at::Tensor g =
      groups ? torch::randint(-1, 3, {n}, torch::kLong) : at::Tensor();
  return ImageDataset(images, labels, classes, g, "synthetic");
}

void expect_same(const ImageDataset& a, const ImageDataset& b) {
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.shape(), b.shape());
  EXPECT_EQ(a.num_classes(), b.num_classes());
  EXPECT_TRUE(torch::equal(a.images(), b.images()));
  EXPECT_TRUE(torch::equal(a.labels(), b.labels()));
  ASSERT_EQ(a.has_groups(), b.has_groups());
  if (a.has_groups()) {
    EXPECT_TRUE(torch::equal(a.groups(), b.groups()));
  }
}

TEST(Hdf5Writer, RootLayoutRoundTripsThroughLoadHdf5Defaults) {
  TempDir dir;
  const auto rgb = random_set(7, 3, 5, 4, 4, /*groups=*/true, 1);
  write_hdf5(dir.file("rgb.h5"), rgb);
  expect_same(rgb, load_hdf5(dir.file("rgb.h5")));
  const auto grey = random_set(5, 1, 6, 6, 3, /*groups=*/false, 2);
  write_hdf5(dir.file("grey.h5"), grey);
  expect_same(grey, load_hdf5(dir.file("grey.h5")));
  // Nothing but the file itself is left behind.
  int files = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator(dir.path())) {
    ++files;
  }
  EXPECT_EQ(files, 2);
}

TEST(Hdf5Writer, SplitsRoundTripThroughLoadDataset) {
  TempDir dir;
  const auto train = random_set(6, 1, 4, 4, 2, false, 3);
  const auto test = random_set(3, 1, 4, 4, 2, false, 4);
  Hdf5WriteOptions options;
  options.number_attributes = {{"epsilon", 10.0}, {"delta", 1e-5}};
  options.string_attributes = {{"privacy", "post-processing"}};
  write_hdf5(dir.file("s.h5"), {{"train", train}, {"test", test}}, options);
  EXPECT_EQ(hdf5_splits(dir.file("s.h5")),
            (std::vector<std::string>{"train", "test"}));
  expect_same(train, load_dataset(dir.file("s.h5"), "train"));
  expect_same(test, load_dataset(dir.file("s.h5"), "test"));

  // The attributes, read with the HDF5 API directly.
  const hid_t f =
      H5Fopen(dir.file("s.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  double eps = 0;
  const hid_t a = H5Aopen_by_name(f, "/", "epsilon", H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(a, 0);
  EXPECT_GE(H5Aread(a, H5T_NATIVE_DOUBLE, &eps), 0);
  EXPECT_EQ(eps, 10.0);
  H5Aclose(a);
  const hid_t s = H5Aopen_by_name(f, "/", "privacy", H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(s, 0);
  const hid_t type = H5Aget_type(s);
  std::string text(H5Tget_size(type), '\0');
  EXPECT_GE(H5Aread(s, type, text.data()), 0);
  EXPECT_EQ(std::string(text.c_str()), "post-processing");
  H5Tclose(type);
  H5Aclose(s);
  H5Fclose(f);
}

TEST(Hdf5Writer, ReplacesAnExistingFileWhole) {
  TempDir dir;
  const auto first = random_set(9, 1, 3, 3, 2, false, 5);
  const auto second = random_set(2, 1, 3, 3, 2, false, 6);
  write_hdf5(dir.file("d.h5"), first);
  write_hdf5(dir.file("d.h5"), second);
  expect_same(second, load_hdf5(dir.file("d.h5")));
}

TEST(Hdf5Writer, RejectsBadSplitsAndUnwritablePaths) {
  TempDir dir;
  const auto d = random_set(2, 1, 2, 2, 2, false, 7);
  EXPECT_THROW(write_hdf5(dir.file("a.h5"), std::vector<Hdf5Split>{}),
               std::invalid_argument);
  try {
    write_hdf5(dir.file("a.h5"), {{"train", d}, {"train", d}});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("split \"train\" given twice"));
  }
  try {
    write_hdf5(dir.file("a.h5"), {{"", d}, {"test", d}});
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("root split"));
  }
  const std::string bad = dir.file("no_such_folder/s.h5");
  try {
    write_hdf5(bad, d);
    FAIL() << "no exception";
  } catch (const DatasetError& e) {
    EXPECT_EQ(e.file(), bad);
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.h5")));
}

}  // namespace
}  // namespace dptrain::datasets
