// Decoding JPEG (libjpeg-turbo) and PNG (libpng) files into 8-bit pixels,
// and resizing them to a model's input size. Torch-free, so that a fuzzer
// can drive the decoders without LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::datasets {

/// Pixels of one image: `height` × `width` × `channels` bytes, row-major,
/// channels last (1 = grey, 3 = RGB).
struct DecodedImage {
  std::int64_t height = 0;
  std::int64_t width = 0;
  std::int64_t channels = 0;
  std::vector<std::uint8_t> pixels;
};

/// True when `path` ends .jpg, .jpeg or .png (any case): the files the image
/// folder and CSV layouts read.
bool is_image_file_name(const std::string& path);

/// The largest image decode_image accepts: 2^28 pixels (16384 × 16384), so
/// that a corrupt header cannot ask for gigabytes.
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{1} << 28;

/// Decodes a JPEG or PNG held in memory, told apart by their signatures.
/// Grey images stay one channel; colour, palette and CMYK images become RGB;
/// alpha is dropped; 16-bit PNGs are reduced to 8 bits. `name` names the
/// source in errors. Throws DatasetError("<name>: ...") for an unknown
/// format, a corrupt or truncated file (a JPEG whose data end early is an
/// error, not a grey tail), or an image of more than `max_pixels` pixels.
DecodedImage decode_image(const std::uint8_t* data, std::size_t size,
                          const std::string& name,
                          std::int64_t max_pixels = kMaxImagePixels);

/// Reads and decodes the file at `path` (errors name the path).
DecodedImage decode_image_file(const std::string& path);

/// `image` with `channels` (1 or 3) channels: RGB to grey by the ITU-R
/// BT.601 weights (0.299, 0.587, 0.114), as Pillow's convert("L"); grey to
/// RGB by repetition. Throws std::invalid_argument for another count.
DecodedImage with_channels(const DecodedImage& image, std::int64_t channels);

/// `image` scaled, keeping its aspect ratio, so that it covers height ×
/// width, then cut to height × width around its centre (the evaluation
/// transform of ImageNet models). Scaling is separable with a triangle
/// filter widened by the scale factor when shrinking (antialiased, as
/// Pillow's BILINEAR resize). An image already of that size comes back
/// unchanged. Throws std::invalid_argument for a size < 1.
DecodedImage resize_center_crop(const DecodedImage& image, std::int64_t height,
                                std::int64_t width);

}  // namespace dptrain::datasets
