#include "dptrain/datasets/png_writer.h"

#include <png.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "dptrain/datasets/errors.h"

namespace dptrain::datasets {
namespace {

std::string sizes_text(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) {
    s += (i ? ", " : "") + std::to_string(t.size(i));
  }
  return s + "]";
}

// libpng reports errors through longjmp; this keeps the setjmp in a frame
// that owns no C++ objects with destructors.
bool encode(std::FILE* out, int width, int height, int color_type,
            png_bytep* rows) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, out);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width),
               static_cast<png_uint_32>(height), 8, color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

at::Tensor class_grid(const at::Tensor& images, const at::Tensor& labels,
                      std::int64_t num_classes, std::int64_t columns,
                      std::int64_t pad) {
  if (images.dim() != 4 || images.scalar_type() != at::kByte) {
    throw std::invalid_argument(
        "class_grid: images must be uint8 [N, C, H, W]"
        ", got " +
        sizes_text(images));
  }
  if (labels.dim() != 1 || labels.size(0) != images.size(0)) {
    throw std::invalid_argument("class_grid: labels must be [N] with N = " +
                                std::to_string(images.size(0)) + ", got " +
                                sizes_text(labels));
  }
  if (num_classes < 1 || columns < 1 || pad < 0) {
    throw std::invalid_argument(
        "class_grid: num_classes and columns must be >= 1 and pad >= 0, got " +
        std::to_string(num_classes) + ", " + std::to_string(columns) + ", " +
        std::to_string(pad));
  }
  const auto c = images.size(1), h = images.size(2), w = images.size(3);
  auto grid = torch::zeros(
      {c, num_classes * (h + pad) + pad, columns * (w + pad) + pad},
      torch::kUInt8);
  const auto cpu_images = images.cpu();
  const auto cpu_labels = labels.cpu().to(torch::kLong).contiguous();
  std::vector<std::int64_t> used(static_cast<std::size_t>(num_classes), 0);
  const auto* label = cpu_labels.data_ptr<std::int64_t>();
  for (int64_t i = 0; i < images.size(0); ++i) {
    const auto r = label[i];
    if (r < 0 || r >= num_classes) {
      throw std::invalid_argument("class_grid: label " + std::to_string(r) +
                                  " outside [0, " +
                                  std::to_string(num_classes) + ")");
    }
    auto& col = used[static_cast<std::size_t>(r)];
    if (col >= columns) continue;
    const auto top = pad + r * (h + pad), left = pad + col * (w + pad);
    grid.narrow(1, top, h).narrow(2, left, w).copy_(cpu_images[i]);
    ++col;
  }
  return grid;
}

void write_png(const std::string& path, const at::Tensor& image) {
  if (image.dim() != 3 || image.scalar_type() != at::kByte ||
      (image.size(0) != 1 && image.size(0) != 3) || image.size(1) < 1 ||
      image.size(2) < 1) {
    throw std::invalid_argument(
        "write_png: the image must be uint8 [C, H, W] with C = 1 or 3, got " +
        sizes_text(image));
  }
  const int height = static_cast<int>(image.size(1));
  const int width = static_cast<int>(image.size(2));
  const int color =
      image.size(0) == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
  // Interleaved rows: [H, W, C].
  const auto pixels = image.cpu().permute({1, 2, 0}).contiguous();
  std::vector<png_bytep> rows(static_cast<std::size_t>(height));
  auto* base = pixels.data_ptr<std::uint8_t>();
  const auto stride =
      static_cast<std::size_t>(width) * static_cast<std::size_t>(image.size(0));
  for (int y = 0; y < height; ++y) {
    rows[static_cast<std::size_t>(y)] =
        base + static_cast<std::size_t>(y) * stride;
  }

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* out = std::fopen(tmp.c_str(), "wb");
  if (out == nullptr) throw DatasetError(path, "cannot create " + tmp);
  bool ok = encode(out, width, height, color, rows.data());
  ok = std::fflush(out) == 0 && ok;
  ok = ::fsync(fileno(out)) == 0 && ok;
  ok = std::fclose(out) == 0 && ok;
  std::error_code ec;
  if (!ok) {
    std::filesystem::remove(tmp, ec);
    throw DatasetError(path, "cannot write the PNG");
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw DatasetError(path, "cannot rename " + tmp + ": " + ec.message());
  }
}

}  // namespace dptrain::datasets
