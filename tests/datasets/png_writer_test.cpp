// The sample grid: one row per class, decoded back with libpng.
#include "dptrain/datasets/png_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <png.h>
#include <torch/torch.h>

#include <cstdio>
#include <vector>

#include "dataset_files.h"
#include "dptrain/datasets/errors.h"

namespace dptrain::datasets {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;  // dataset_files.h

// [C, H, W] uint8 of a PNG file, decoded with libpng's simplified API.
at::Tensor decode_png(const std::string& path, int channels) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  EXPECT_NE(png_image_begin_read_from_file(&image, path.c_str()), 0)
      << image.message;
  image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  std::vector<png_byte> buffer(PNG_IMAGE_SIZE(image));
  EXPECT_NE(png_image_finish_read(&image, nullptr, buffer.data(), 0, nullptr),
            0)
      << image.message;
  const auto h = static_cast<int64_t>(image.height);
  const auto w = static_cast<int64_t>(image.width);
  return torch::from_blob(buffer.data(), {h, w, channels}, torch::kUInt8)
      .permute({2, 0, 1})
      .clone();
}

TEST(PngWriter, GreyAndRgbImagesDecodeToTheSamePixels) {
  TempDir dir;
  torch::manual_seed(0);
  const auto grey = torch::randint(0, 256, {1, 5, 7}, torch::kUInt8);
  write_png(dir.file("g.png"), grey);
  EXPECT_TRUE(torch::equal(decode_png(dir.file("g.png"), 1), grey));
  const auto rgb = torch::randint(0, 256, {3, 4, 6}, torch::kUInt8);
  write_png(dir.file("c.png"), rgb);
  EXPECT_TRUE(torch::equal(decode_png(dir.file("c.png"), 3), rgb));
}

TEST(PngWriter, ClassGridHasOneRowPerClass) {
  // Six 2×3 images: labels 1, 0, 1, 1, 2, 0; pixel value = 10·(index + 1).
  const int64_t h = 2, w = 3, pad = 1, columns = 2;
  auto images = torch::empty({6, 1, h, w}, torch::kUInt8);
  for (int64_t i = 0; i < 6; ++i) images[i].fill_(10 * (i + 1));
  const auto labels = torch::tensor({1, 0, 1, 1, 2, 0}, torch::kLong);
  const auto grid = class_grid(images, labels, 3, columns, pad);
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{1, 3 * (h + pad) + pad,
                                                columns * (w + pad) + pad}));
  const auto cell = [&](int64_t r, int64_t c) {
    return grid[0][pad + r * (h + pad)][pad + c * (w + pad)].item<int>();
  };
  EXPECT_EQ(cell(0, 0), 20);  // class 0: images 1 and 5
  EXPECT_EQ(cell(0, 1), 60);
  EXPECT_EQ(cell(1, 0), 10);  // class 1: images 0 and 2 (3 does not fit)
  EXPECT_EQ(cell(1, 1), 30);
  EXPECT_EQ(cell(2, 0), 50);  // class 2: image 4, then an empty cell
  EXPECT_EQ(cell(2, 1), 0);
  EXPECT_EQ(grid[0][0][0].item<int>(), 0);  // padding

  TempDir dir;
  write_png(dir.file("grid.png"), grid);
  EXPECT_TRUE(torch::equal(decode_png(dir.file("grid.png"), 1), grid));
}

TEST(PngWriter, RejectsBadInput) {
  TempDir dir;
  const auto ok = torch::zeros({1, 2, 2}, torch::kUInt8);
  try {
    write_png(dir.file("x.png"), torch::zeros({2, 2, 2}, torch::kUInt8));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("C = 1 or 3, got [2, 2, 2]"));
  }
  EXPECT_THROW(write_png(dir.file("x.png"), torch::zeros({1, 2, 2})),
               std::invalid_argument);  // float
  const std::string bad = dir.file("missing/x.png");
  try {
    write_png(bad, ok);
    FAIL() << "no exception";
  } catch (const DatasetError& e) {
    EXPECT_EQ(e.file(), bad);
  }
  const auto images = torch::zeros({2, 1, 2, 2}, torch::kUInt8);
  try {
    class_grid(images, torch::tensor({0, 3}, torch::kLong), 3, 1);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("label 3 outside [0, 3)"));
  }
  EXPECT_THROW(class_grid(images, torch::tensor({0}, torch::kLong), 3, 1),
               std::invalid_argument);
  EXPECT_THROW(class_grid(images, torch::tensor({0, 1}, torch::kLong), 3, 0),
               std::invalid_argument);
}

}  // namespace
}  // namespace dptrain::datasets
