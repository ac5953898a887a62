// Small assertions shared by the dataset tests.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "dataset_files.h"
#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/image_dataset.h"
#include "error_helpers.h"

namespace dptrain::datasets::testing {

/// The message of the exception of type E that `f` throws; records a test
/// failure and returns "" when it throws nothing (or something else).
template <typename E = DatasetError, typename F>
std::string error_of(F&& f) {
  return test_support::error_of<E>(std::forward<F>(f));
}

/// Expects `d` to hold images of shape {c, h, w} with pixel(i, k, y, x) at
/// [i, k, y, x] for every image i (the pattern the file writers write).
inline void expect_pixel_pattern(const ImageDataset& d, std::int64_t c,
                                 std::int64_t h, std::int64_t w) {
  ASSERT_EQ(d.shape(), (std::array<std::int64_t, 3>{c, h, w}));
  auto acc = d.images().accessor<uint8_t, 4>();
  for (std::int64_t i = 0; i < d.size(); ++i)
    for (std::int64_t k = 0; k < c; ++k)
      for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x)
          ASSERT_EQ(acc[i][k][y][x], pixel(i, k, y, x))
              << i << "," << k << "," << y << "," << x;
}

}  // namespace dptrain::datasets::testing
