#include "dptrain/datasets/image_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "test_util.h"

namespace dptrain::datasets {
namespace {

using testing::error_of;
using ::testing::HasSubstr;

// 5 images 2x3x3 whose pixels all equal 10 * index; labels 0,1,2,0,1.
ImageDataset small(bool groups = false) {
  auto x = torch::arange(5, torch::kLong)
               .mul(10)
               .to(torch::kByte)
               .view({5, 1, 1, 1})
               .expand({5, 2, 3, 3})
               .contiguous();
  auto y = torch::tensor({0, 1, 2, 0, 1}, torch::kLong);
  auto g =
      groups ? torch::tensor({3, -1, 3, 0, 0}, torch::kLong) : at::Tensor();
  return ImageDataset(x, y, 3, g, "small");
}

TEST(ImageDataset, ReportsSizeShapeAndClasses) {
  const auto d = small();
  EXPECT_EQ(d.size(), 5);
  EXPECT_EQ(d.shape(), (std::array<std::int64_t, 3>{2, 3, 3}));
  EXPECT_EQ(d.num_classes(), 3);
  EXPECT_EQ(d.class_counts(), (std::vector<std::int64_t>{2, 2, 1}));
  EXPECT_EQ(d.name(), "small");
  const ImageDataset empty;
  EXPECT_EQ(empty.size(), 0);
}

TEST(ImageDataset, GetsOneExample) {
  const auto d = small(true);
  const Example e = d.get(2);
  EXPECT_EQ(e.label, 2);
  EXPECT_EQ(e.group, 3);
  ASSERT_EQ(e.image.sizes(), (std::vector<int64_t>{2, 3, 3}));
  EXPECT_EQ(e.image.scalar_type(), torch::kByte);
  EXPECT_TRUE(torch::all(e.image == 20).item<bool>());
  EXPECT_EQ(small().get(2).group, -1);
}

TEST(ImageDataset, GetsBatchInIndexOrder) {
  const auto d = small(true);
  const Batch b = d.get_batch(std::vector<std::int64_t>{4, 0, 4});
  ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{3, 2, 3, 3}));
  EXPECT_TRUE(torch::equal(b.labels, torch::tensor({1, 0, 1}, torch::kLong)));
  EXPECT_TRUE(torch::equal(b.groups, torch::tensor({0, 3, 0}, torch::kLong)));
  EXPECT_EQ(b.images[0][1][2][2].item<int>(), 40);
  EXPECT_EQ(b.images[1][0][0][0].item<int>(), 0);
  const Batch none = small().get_batch(std::vector<std::int64_t>{1, 2});
  EXPECT_TRUE(torch::equal(none.groups, torch::tensor({-1, -1}, torch::kLong)));
  const Batch zero = d.get_batch(std::vector<std::int64_t>{});
  EXPECT_EQ(zero.images.size(0), 0);
  EXPECT_EQ(zero.images.dim(), 4);
}

TEST(ImageDataset, RejectsBadIndices) {
  const auto d = small();
  EXPECT_THAT(
      error_of<std::out_of_range>([&] { d.get(5); }),
      HasSubstr("ImageDataset(small): index 5 out of range for 5 examples"));
  EXPECT_THAT(error_of<std::out_of_range>([&] { d.get(-1); }),
              HasSubstr("index -1 out of range"));
  EXPECT_THAT(error_of<std::out_of_range>([&] {
                d.get_batch(std::vector<std::int64_t>{0, 7});
              }),
              HasSubstr("index 7 out of range"));
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { d.get_batch(torch::zeros({2}, torch::kFloat)); }),
              HasSubstr("indices must be an integer tensor [B]"));
}

TEST(ImageDataset, SubsetsKeepClasses) {
  const auto d = small(true);
  const auto s = d.subset({3, 1});
  EXPECT_EQ(s.size(), 2);
  EXPECT_EQ(s.num_classes(), 3);
  EXPECT_EQ(s.get(0).label, 0);
  EXPECT_EQ(s.get(0).group, 0);
  EXPECT_EQ(s.get(1).image[0][0][0].item<int>(), 10);
}

TEST(ImageDataset, RejectsBadStorage) {
  auto x = torch::zeros({2, 1, 2, 2}, torch::kByte);
  auto y = torch::zeros({2}, torch::kLong);
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { ImageDataset(x.to(torch::kFloat), y, 2); }),
              HasSubstr("images must be a uint8 tensor [N, C, H, W], got "
                        "Float [2, 1, 2, 2]"));
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] { ImageDataset(x[0], y, 2); }),
      HasSubstr("got Byte [1, 2, 2]"));
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { ImageDataset(x, y.to(torch::kInt), 2); }),
              HasSubstr("labels must be an int64 tensor [N], got Int [2]"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] {
                ImageDataset(x, torch::zeros({3}, torch::kLong), 2, {}, "d");
              }),
              HasSubstr("ImageDataset(d): image/label count mismatch: 2 "
                        "images, 3 labels"));
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] {
        ImageDataset(x, torch::tensor({0, 2}, torch::kLong), 2);
      }),
      HasSubstr("label out of range: labels span [0, 2], expected 0..1"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] {
                ImageDataset(x, torch::tensor({-1, 0}, torch::kLong), 2);
              }),
              HasSubstr("labels span [-1, 0]"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] { ImageDataset(x, y, 0); }),
              HasSubstr("num_classes must be >= 1, got 0"));
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] { ImageDataset(x, y, 65537); }),
      HasSubstr("num_classes must be <= 65536, got 65537"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] {
                ImageDataset(x, y, 2, torch::zeros({3}, torch::kLong));
              }),
              HasSubstr("groups must be an int64 tensor [N] with N = 2"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] {
                ImageDataset(x, y, 2, torch::tensor({0, -2}, torch::kLong));
              }),
              HasSubstr("group ids must be >= -1, got -2"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] {
                ImageDataset(torch::zeros({2, 0, 2, 2}, torch::kByte), y, 2);
              }),
              HasSubstr("images must have C, H, W >= 1"));
}

}  // namespace
}  // namespace dptrain::datasets
