#include "dptrain/datasets/image_decoder.h"

// clang-format off
#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <png.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <new>
#include <stdexcept>

#include "dptrain/datasets/errors.h"
#include "file_io.h"

namespace dptrain::datasets {
namespace {

// libjpeg reports errors through error_exit, which must not return: it
// jumps back into decode_jpeg_pixels. Nothing with a destructor lives in
// that function's frame, so the jump skips no C++ clean-up.
struct JpegErrors {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

// Warnings are ignored except the one that says the data ended early, which
// libjpeg otherwise papers over with grey rows.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    reinterpret_cast<JpegErrors*>(cinfo->err)->truncated = true;
  }
}

// 0 on success; otherwise `message` says what went wrong. `out` belongs to
// the caller, so that a jump out of libjpeg leaks nothing.
int decode_jpeg_pixels(const std::uint8_t* data, std::size_t size,
                       std::int64_t max_pixels, DecodedImage* out,
                       char* message) {
  jpeg_decompress_struct cinfo;
  JpegErrors errors;
  cinfo.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = jpeg_error_exit;
  errors.manager.emit_message = jpeg_emit_message;
  errors.truncated = false;
  errors.message[0] = '\0';
  if (setjmp(errors.jump) != 0) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(message, JMSG_LENGTH_MAX, "corrupt JPEG: %s", errors.message);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (static_cast<std::int64_t>(cinfo.image_height) * cinfo.image_width >
      max_pixels) {
    std::snprintf(message, JMSG_LENGTH_MAX,
                  "image of %u x %u pixels is larger than the %lld pixels "
                  "accepted",
                  cinfo.image_width, cinfo.image_height,
                  static_cast<long long>(max_pixels));
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  const bool cmyk =
      cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cinfo.jpeg_color_space == JCS_GRAYSCALE
                              ? JCS_GRAYSCALE
                          : cmyk ? JCS_CMYK
                                 : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  const std::int64_t height = cinfo.output_height;
  const std::int64_t width = cinfo.output_width;
  const std::int64_t components = cinfo.output_components;
  std::vector<std::uint8_t>& pixels = out->pixels;
  try {
    pixels.resize(static_cast<std::size_t>(height * width * components));
  } catch (const std::bad_alloc&) {
    jpeg_destroy_decompress(&cinfo);
    std::snprintf(message, JMSG_LENGTH_MAX, "out of memory");
    return 1;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row =
        pixels.data() +
        static_cast<std::size_t>(cinfo.output_scanline * width * components);
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (errors.truncated) {
    std::snprintf(message, JMSG_LENGTH_MAX,
                  "truncated JPEG: the data end before the image does");
    return 1;
  }
  out->height = height;
  out->width = width;
  out->channels = components;
  return 0;
}

// Adobe's CMYK JPEGs store inverted inks: R = C·K/255, and so on.
void cmyk_to_rgb(DecodedImage& image) {
  const std::size_t n = image.pixels.size() / 4;
  std::vector<std::uint8_t> rgb(n * 3);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned k = image.pixels[4 * i + 3];
    for (int c = 0; c < 3; ++c) {
      rgb[3 * i + c] =
          static_cast<std::uint8_t>((image.pixels[4 * i + c] * k + 127) / 255);
    }
  }
  image.pixels = std::move(rgb);
  image.channels = 3;
}

DecodedImage decode_jpeg(const std::uint8_t* data, std::size_t size,
                         const std::string& name, std::int64_t max_pixels) {
  DecodedImage image;
  char message[JMSG_LENGTH_MAX];
  if (decode_jpeg_pixels(data, size, max_pixels, &image, message) != 0) {
    throw DatasetError(name, message);
  }
  if (image.channels == 4) cmyk_to_rgb(image);
  return image;
}

DecodedImage decode_png(const std::uint8_t* data, std::size_t size,
                        const std::string& name, std::int64_t max_pixels) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_memory(&png, data, size) == 0) {
    throw DatasetError(name, std::string("corrupt PNG: ") + png.message);
  }
  const std::int64_t height = png.height;
  const std::int64_t width = png.width;
  if (height * width > max_pixels) {
    png_image_free(&png);
    throw DatasetError(
        name, "image of " + std::to_string(width) + " x " +
                  std::to_string(height) + " pixels is larger than the " +
                  std::to_string(max_pixels) + " pixels accepted");
  }
  const bool colour = (png.format & PNG_FORMAT_FLAG_COLOR) != 0;
  const bool alpha = (png.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  // Read with alpha when there is one (8-bit sRGB, not premultiplied), then
  // drop it, so that colour values are as stored.
  png.format = colour ? (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB)
                      : (alpha ? PNG_FORMAT_GA : PNG_FORMAT_GRAY);
  std::vector<std::uint8_t> read(PNG_IMAGE_SIZE(png));
  if (png_image_finish_read(&png, nullptr, read.data(), 0, nullptr) == 0) {
    const std::string message = png.message;
    png_image_free(&png);
    throw DatasetError(name, "corrupt PNG: " + message);
  }
  DecodedImage image;
  image.height = height;
  image.width = width;
  image.channels = colour ? 3 : 1;
  if (!alpha) {
    image.pixels = std::move(read);
    return image;
  }
  const std::size_t n = static_cast<std::size_t>(height * width);
  const auto c = static_cast<std::size_t>(image.channels);
  image.pixels.resize(n * c);
  for (std::size_t i = 0; i < n; ++i) {
    std::memcpy(&image.pixels[i * c], &read[i * (c + 1)], c);
  }
  return image;
}

// PIL's antialiased triangle filter along one axis: out[i] is a weighted
// mean of the inputs within `support` of its centre in input coordinates.
struct AxisWeights {
  std::vector<std::int64_t> first;  // first input index of each output
  std::vector<std::int64_t> count;  // inputs contributing
  std::vector<double> weights;      // count[i] weights, from offset[i]
  std::vector<std::size_t> offset;
};

AxisWeights axis_weights(std::int64_t in, std::int64_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle's half-width is 1
  AxisWeights w;
  for (std::int64_t i = 0; i < out; ++i) {
    const double centre = (static_cast<double>(i) + 0.5) * scale;
    const auto lo = std::max<std::int64_t>(
        static_cast<std::int64_t>(std::floor(centre - support)), 0);
    const auto hi = std::min<std::int64_t>(
        static_cast<std::int64_t>(std::ceil(centre + support)), in);
    w.first.push_back(lo);
    w.offset.push_back(w.weights.size());
    double total = 0.0;
    std::int64_t n = 0;
    for (std::int64_t x = lo; x < hi; ++x) {
      const double d =
          std::abs((static_cast<double>(x) + 0.5 - centre) / filter_scale);
      const double v = d < 1.0 ? 1.0 - d : 0.0;
      w.weights.push_back(v);
      total += v;
      ++n;
    }
    if (total <= 0.0) {  // cannot happen for in, out >= 1; keep it safe
      w.weights.back() = total = 1.0;
    }
    for (std::int64_t k = 0; k < n; ++k)
      w.weights[w.offset.back() + k] /= total;
    w.count.push_back(n);
  }
  return w;
}

}  // namespace

bool is_image_file_name(const std::string& path) {
  const auto dot = path.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(ch));
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

DecodedImage decode_image(const std::uint8_t* data, std::size_t size,
                          const std::string& name, std::int64_t max_pixels) {
  static constexpr std::uint8_t kPng[8] = {0x89, 'P',  'N',  'G',
                                           '\r', '\n', 0x1a, '\n'};
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
    return decode_jpeg(data, size, name, max_pixels);
  }
  if (size >= 8 && std::memcmp(data, kPng, 8) == 0) {
    return decode_png(data, size, name, max_pixels);
  }
  throw DatasetError(name, size == 0 ? "empty file, expected a JPEG or PNG"
                                     : "neither a JPEG nor a PNG (by its "
                                       "first bytes)");
}

DecodedImage decode_image_file(const std::string& path) {
  const auto bytes = detail::read_file(path);
  return decode_image(bytes.data(), bytes.size(), path);
}

DecodedImage with_channels(const DecodedImage& image, std::int64_t channels) {
  if (channels != 1 && channels != 3) {
    throw std::invalid_argument("channels must be 1 or 3, got " +
                                std::to_string(channels));
  }
  if (image.channels == channels) return image;
  DecodedImage out;
  out.height = image.height;
  out.width = image.width;
  out.channels = channels;
  const std::size_t n = static_cast<std::size_t>(image.height * image.width);
  out.pixels.resize(n * static_cast<std::size_t>(channels));
  if (channels == 3) {
    for (std::size_t i = 0; i < n; ++i) {
      out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] =
          image.pixels[i];
    }
  } else {
    // Pillow's integer form of 0.299 R + 0.587 G + 0.114 B.
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t v = image.pixels[3 * i] * 19595u +
                              image.pixels[3 * i + 1] * 38470u +
                              image.pixels[3 * i + 2] * 7471u + 0x8000u;
      out.pixels[i] = static_cast<std::uint8_t>(v >> 16);
    }
  }
  return out;
}

DecodedImage resize_center_crop(const DecodedImage& image, std::int64_t height,
                                std::int64_t width) {
  if (height < 1 || width < 1) {
    throw std::invalid_argument("resize: size must be >= 1, got " +
                                std::to_string(height) + " x " +
                                std::to_string(width));
  }
  if (image.height == height && image.width == width) return image;
  // Cover height × width with the aspect ratio kept, then crop the centre.
  const double scale = std::max(static_cast<double>(height) / image.height,
                                static_cast<double>(width) / image.width);
  const std::int64_t h = std::max<std::int64_t>(
      height, static_cast<std::int64_t>(std::lround(image.height * scale)));
  const std::int64_t w = std::max<std::int64_t>(
      width, static_cast<std::int64_t>(std::lround(image.width * scale)));
  const std::int64_t c = image.channels;
  const AxisWeights across = axis_weights(image.width, w);
  const AxisWeights down = axis_weights(image.height, h);
  const std::int64_t top = (h - height) / 2;
  const std::int64_t left = (w - width) / 2;
  // Horizontal pass over every input row, only for the kept columns.
  std::vector<double> rows(static_cast<std::size_t>(image.height * width * c));
  for (std::int64_t y = 0; y < image.height; ++y) {
    for (std::int64_t x = 0; x < width; ++x) {
      const std::int64_t ox = x + left;
      const double* wt = &across.weights[across.offset[ox]];
      for (std::int64_t ch = 0; ch < c; ++ch) {
        double sum = 0.0;
        for (std::int64_t k = 0; k < across.count[ox]; ++k) {
          sum +=
              wt[k] * image.pixels[static_cast<std::size_t>(
                          (y * image.width + across.first[ox] + k) * c + ch)];
        }
        rows[static_cast<std::size_t>((y * width + x) * c + ch)] = sum;
      }
    }
  }
  DecodedImage out;
  out.height = height;
  out.width = width;
  out.channels = c;
  out.pixels.resize(static_cast<std::size_t>(height * width * c));
  for (std::int64_t y = 0; y < height; ++y) {
    const std::int64_t oy = y + top;
    const double* wt = &down.weights[down.offset[oy]];
    for (std::int64_t i = 0; i < width * c; ++i) {
      double sum = 0.0;
      for (std::int64_t k = 0; k < down.count[oy]; ++k) {
        sum += wt[k] * rows[static_cast<std::size_t>(
                           (down.first[oy] + k) * width * c + i)];
      }
      out.pixels[static_cast<std::size_t>(y * width * c + i)] =
          static_cast<std::uint8_t>(std::clamp(std::lround(sum), 0L, 255L));
    }
  }
  return out;
}

}  // namespace dptrain::datasets
