#include "dptrain/datasets/hdf5_reader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dataset_files.h"
#include "dptrain/datasets/errors.h"
#include "test_util.h"

namespace dptrain::datasets {
namespace {

using namespace testing;  // NOLINT: the file writers
using ::testing::HasSubstr;

TEST(Hdf5Reader, ReadsPatchCamelyonNamesAsChannelsFirst) {
  TempDir dir;
  {
    H5Writer f(dir.file("pcam.h5"));
    f.images("x", 3, 4, 5, 3);
    // PatchCamelyon stores y as uint8 [N, 1, 1, 1].
    f.int_vector("y", {1, 0, 1}, H5T_STD_U8LE, {3, 1, 1, 1});
  }
  const auto d = load_hdf5(dir.file("pcam.h5"));
  ASSERT_EQ(d.size(), 3);
  expect_pixel_pattern(d, 3, 4, 5);
  EXPECT_EQ(d.num_classes(), 2);
  EXPECT_EQ(d.get(0).label, 1);
  EXPECT_EQ(d.get(1).label, 0);
  EXPECT_FALSE(d.has_groups());
  EXPECT_EQ(d.get(2).group, -1);
}

TEST(Hdf5Reader, ReadsImagesLabelsAndGroups) {
  TempDir dir;
  {
    H5Writer f(dir.file("d.h5"));
    f.images("images", 4, 2, 2, 1);
    f.int_vector("labels", {0, 4, 2, 3}, H5T_STD_I64LE);
    f.int_vector("groups", {7, -1, 0, 7}, H5T_STD_I16LE);
  }
  Hdf5Options o;
  o.num_classes = 5;
  const auto d = load_hdf5(dir.file("d.h5"), o);
  expect_pixel_pattern(d, 1, 2, 2);
  EXPECT_EQ(d.num_classes(), 5);
  ASSERT_TRUE(d.has_groups());
  EXPECT_EQ(d.get(0).group, 7);
  EXPECT_EQ(d.get(1).group, -1);
  EXPECT_EQ(d.get(1).label, 4);
}

TEST(Hdf5Reader, ReadsInBlocksOfRows) {
  TempDir dir;
  {
    H5Writer f(dir.file("d.h5"));
    f.images("x", 7, 3, 2, 3);
    f.int_vector("y", {0, 1, 2, 3, 4, 5, 6});
  }
  for (std::size_t block : {1, 18, 40, 1000}) {  // 1 row, 1 row, 2 rows, all
    Hdf5Options o;
    o.read_block_bytes = block;
    const auto d = load_hdf5(dir.file("d.h5"), o);
    ASSERT_EQ(d.size(), 7);
    expect_pixel_pattern(d, 3, 3, 2);
    EXPECT_EQ(d.get(6).label, 6);
  }
}

TEST(Hdf5Reader, ReadsRank3AsOneChannel) {
  TempDir dir;
  {
    H5Writer f(dir.file("d.h5"));
    std::vector<std::uint8_t> v;
    for (int i = 0; i < 2; ++i)
      for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 3; ++x) v.push_back(pixel(i, 0, y, x));
    f.dataset("x", {2, 3, 3}, v, H5T_STD_U8LE, H5T_NATIVE_UINT8);
    f.int_vector("y", {0, 1});
  }
  expect_pixel_pattern(load_hdf5(dir.file("d.h5")), 1, 3, 3);
}

TEST(Hdf5Reader, ReadsConfiguredNamesSplitsAndSeparateLabelFile) {
  TempDir dir;
  {
    H5Writer f(dir.file("x.h5"));
    f.group("train");
    f.images("train/pixels", 2, 3, 3, 3);
    H5Writer g(dir.file("y.h5"));
    g.group("train");
    g.int_vector("train/target", {1, 1});
    g.int_vector("train/hospital", {2, 3});
  }
  Hdf5Options o;
  o.images_dataset = "pixels";
  o.labels_dataset = "target";
  o.groups_dataset = "hospital";
  o.labels_file = dir.file("y.h5");
  o.split = "train";
  const auto d = load_hdf5(dir.file("x.h5"), o);
  expect_pixel_pattern(d, 3, 3, 3);
  EXPECT_EQ(d.get(1).group, 3);
  EXPECT_EQ(d.get(1).label, 1);
}

TEST(Hdf5Reader, ListsSplitGroups) {
  TempDir dir;
  {
    H5Writer f(dir.file("s.h5"));
    f.group("train");
    f.group("test");
    f.group("other");
    f.images("test/images", 1, 2, 2, 1);
    f.images("train/x", 1, 2, 2, 1);
    f.images("other/x", 1, 2, 2, 1);
    H5Writer g(dir.file("flat.h5"));
    g.images("x", 1, 2, 2, 1);
  }
  EXPECT_EQ(hdf5_splits(dir.file("s.h5")),
            (std::vector<std::string>{"train", "test"}));
  EXPECT_TRUE(hdf5_splits(dir.file("flat.h5")).empty());
}

class Hdf5BadInput : public ::testing::Test {
 protected:
  std::string error_for(const std::function<void(H5Writer&)>& fill,
                        const Hdf5Options& o = {}) {
    {
      H5Writer f(path_);
      fill(f);
    }
    return error_of([&] { load_hdf5(path_, o); });
  }
  TempDir dir_;
  std::string path_ = dir_.file("bad.h5");
};

TEST_F(Hdf5BadInput, MissingFileOrNotHdf5) {
  EXPECT_THAT(error_of([&] { load_hdf5(dir_.file("none.h5")); }),
              HasSubstr(dir_.file("none.h5") + ": no such file"));
  write_file(dir_.file("text.h5"), {'h', 'e', 'l', 'l', 'o'});
  EXPECT_THAT(error_of([&] { load_hdf5(dir_.file("text.h5")); }),
              HasSubstr(dir_.file("text.h5") + ": not an HDF5 file"));
  EXPECT_THAT(error_of([&] { hdf5_splits(dir_.file("text.h5")); }),
              HasSubstr("not an HDF5 file"));
}

TEST_F(Hdf5BadInput, MissingDatasets) {
  EXPECT_THAT(error_for([](H5Writer& f) { f.int_vector("y", {0}); }),
              HasSubstr(path_ + ": missing dataset: no images dataset \"x\", "
                                "\"images\""));
  EXPECT_THAT(error_for([](H5Writer& f) { f.images("x", 1, 2, 2, 1); }),
              HasSubstr(path_ + ": missing dataset: no labels dataset \"y\", "
                                "\"labels\""));
  Hdf5Options o;
  o.groups_dataset = "site";
  EXPECT_THAT(error_for(
                  [](H5Writer& f) {
                    f.images("x", 1, 2, 2, 1);
                    f.int_vector("y", {0});
                  },
                  o),
              HasSubstr("no groups dataset \"site\""));
  o = {};
  o.split = "train";  // the group does not exist at all
  EXPECT_THAT(error_for([](H5Writer& f) { f.images("x", 1, 2, 2, 1); }, o),
              HasSubstr("no images dataset \"train/x\", \"train/images\""));
  // A group named like the dataset is not a dataset.
  EXPECT_THAT(error_for([](H5Writer& f) { f.group("x"); }),
              HasSubstr("no images dataset \"x\""));
}

TEST_F(Hdf5BadInput, WrongRankOrDtype) {
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.dataset<float>("x", {1, 2, 2, 1}, {0, 0, 0, 0},
                                 H5T_IEEE_F32LE, H5T_NATIVE_FLOAT);
                f.int_vector("y", {0});
              }),
              HasSubstr(path_ + ": wrong dtype: images dataset \"x\" must be "
                                "uint8, got float32"));
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.dataset<std::int64_t>("x", {1, 2, 2, 1}, {0, 0, 0, 0},
                                        H5T_STD_I16LE, H5T_NATIVE_INT64);
                f.int_vector("y", {0});
              }),
              HasSubstr("must be uint8, got int16"));
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.dataset<std::uint8_t>("x", {4, 2},
                                        std::vector<std::uint8_t>(8),
                                        H5T_STD_U8LE, H5T_NATIVE_UINT8);
                f.int_vector("y", {0});
              }),
              HasSubstr(path_ + ": wrong rank: images dataset \"x\" must be "
                                "[N, H, W, C] or [N, H, W], got [4, 2]"));
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.images("x", 2, 2, 2, 1);
                f.dataset<double>("y", {2}, {0.0, 1.0}, H5T_IEEE_F64LE,
                                  H5T_NATIVE_DOUBLE);
              }),
              HasSubstr(path_ + ": wrong dtype: labels dataset \"y\" must hold "
                                "integers, got float64"));
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.images("x", 2, 2, 2, 1);
                f.int_vector("y", {0, 1}, H5T_STD_I32LE, {1, 2});
              }),
              HasSubstr("wrong rank: labels dataset \"y\" must be [N] (or "
                        "[N, 1, ...]), got [1, 2]"));
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.images("x", 2, 2, 2, 1);
                f.int_vector("y", {0, 1});
                f.int_vector("groups", {0, 1, 0, 1}, H5T_STD_I32LE, {2, 2});
              }),
              HasSubstr("wrong rank: groups dataset \"groups\""));
}

TEST_F(Hdf5BadInput, CountMismatchAndOutOfRange) {
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.images("x", 3, 2, 2, 1);
                f.int_vector("y", {0, 1});
              }),
              HasSubstr(path_ + ": image/label count mismatch: 3 images in "
                                "\"x\", 2 labels in \"y\""));
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.images("x", 2, 2, 2, 1);
                f.int_vector("y", {0, -3});
              }),
              HasSubstr(path_ + ": label out of range: dataset \"y\" holds -3, "
                                "expected labels >= 0"));
  Hdf5Options o;
  o.num_classes = 2;
  EXPECT_THAT(error_for(
                  [](H5Writer& f) {
                    f.images("x", 2, 2, 2, 1);
                    f.int_vector("y", {0, 2});
                  },
                  o),
              HasSubstr("label out of range: dataset \"y\" holds 2, expected "
                        "0..1"));
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.images("x", 2, 2, 2, 1);
                f.int_vector("y", {0, 1});
                f.int_vector("groups", {0});
              }),
              HasSubstr("image/group count mismatch: 2 images, 1 group ids"));
  EXPECT_THAT(error_for([](H5Writer& f) {
                f.images("x", 2, 2, 2, 1);
                f.int_vector("y", {0, 1});
                f.int_vector("groups", {0, -2});
              }),
              HasSubstr("group id out of range: dataset \"groups\" holds -2"));
}

// Labels set the class count (max label + 1) when Hdf5Options::num_classes
// is 0: a stray 2^40 once sized an 8 TB per-class count vector (bad_alloc),
// and a stray 100000 silently made a 100001-class model head.
TEST_F(Hdf5BadInput, RefusesLabelAboveLargestSupported) {
  for (const std::int64_t bad :
       {std::int64_t{1} << 40, std::int64_t{100000}, std::int64_t{65536}}) {
    EXPECT_THAT(error_for([&](H5Writer& f) {
                  f.images("x", 2, 2, 2, 1);
                  f.int_vector("y", {0, bad}, H5T_STD_I64LE);
                }),
                HasSubstr(path_ + ": label out of range: dataset \"y\" holds " +
                          std::to_string(bad) +
                          ", above the largest supported label 65535"));
  }
  {
    H5Writer f(path_);
    f.images("x", 2, 2, 2, 1);
    f.int_vector("y", {0, 65535}, H5T_STD_I64LE);
  }
  EXPECT_EQ(load_hdf5(path_).num_classes(), 65536);
  Hdf5Options o;
  o.num_classes = 65537;
  EXPECT_THAT(error_of<std::invalid_argument>([&] { load_hdf5(path_, o); }),
              HasSubstr("num_classes must be <= 65536, got 65537"));
}

}  // namespace
}  // namespace dptrain::datasets
