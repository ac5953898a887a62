// PNG output for a person to look at: a grid of images with one row per
// class (the sample grid of `dptrain diffusion sample`).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace dptrain::datasets {

/// Images uint8 [N, C, H, W] with labels int64 [N] in [0, num_classes) laid
/// out as one uint8 image [C, R·(H+pad)+pad, columns·(W+pad)+pad]: row r
/// holds the first `columns` images of class r in order (black where a class
/// has fewer), with `pad` black pixels between and around the cells. R =
/// num_classes. Throws std::invalid_argument for other shapes, dtypes, a
/// label outside the range, columns < 1 or pad < 0.
at::Tensor class_grid(const at::Tensor& images, const at::Tensor& labels,
                      std::int64_t num_classes, std::int64_t columns,
                      std::int64_t pad = 2);

/// Writes one image uint8 [C, H, W] (C = 1: grey, C = 3: RGB) as an 8-bit
/// PNG, through "<path>.tmp.<pid>" renamed over `path`. Throws
/// std::invalid_argument for another shape or dtype; DatasetError naming the
/// file when it cannot be written.
void write_png(const std::string& path, const at::Tensor& image);

}  // namespace dptrain::datasets
