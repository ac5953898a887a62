#include "dptrain/datasets/transforms.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

namespace dptrain::datasets {
namespace {

struct ViewDraw {
  int64_t dy;
  int64_t dx;
  bool flip;
};

// Source index of padded coordinate i (in [0, n + 2p)) shifted back by p, or
// -1 for a zero-filled border.
int64_t source_index(int64_t i, int64_t n, PadMode mode) {
  if (i >= 0 && i < n) return i;
  if (mode == PadMode::kZero) return -1;
  return i < 0 ? -i : 2 * (n - 1) - i;  // reflect without repeating the edge
}

template <typename T>
void fill_views(const T* in, T* out, const std::vector<ViewDraw>& draws,
                int64_t k, int64_t C, int64_t H, int64_t W, int64_t pad,
                PadMode mode) {
  const int64_t plane = H * W;
  const int64_t image = C * plane;
  at::parallel_for(0, static_cast<int64_t>(draws.size()), 16,
                   [&](int64_t begin, int64_t end) {
                     std::vector<int64_t> cols(static_cast<size_t>(W));
                     std::vector<int64_t> rows(static_cast<size_t>(H));
                     for (int64_t v = begin; v < end; ++v) {
                       const ViewDraw& d = draws[static_cast<size_t>(v)];
                       for (int64_t x = 0; x < W; ++x) {
                         const int64_t cx = d.flip ? W - 1 - x : x;
                         cols[static_cast<size_t>(x)] =
                             source_index(cx + d.dx - pad, W, mode);
                       }
                       for (int64_t y = 0; y < H; ++y) {
                         rows[static_cast<size_t>(y)] =
                             source_index(y + d.dy - pad, H, mode);
                       }
                       const T* src = in + (v / k) * image;
                       T* dst = out + v * image;
                       for (int64_t c = 0; c < C; ++c) {
                         for (int64_t y = 0; y < H; ++y) {
                           T* drow = dst + c * plane + y * W;
                           const int64_t sy = rows[static_cast<size_t>(y)];
                           if (sy < 0) {
                             std::fill(drow, drow + W, T(0));
                             continue;
                           }
                           const T* srow = src + c * plane + sy * W;
                           for (int64_t x = 0; x < W; ++x) {
                             const int64_t sx = cols[static_cast<size_t>(x)];
                             drow[x] = sx < 0 ? T(0) : srow[sx];
                           }
                         }
                       }
                     }
                   });
}

// One random-resized view per draw: bilinear samples of the box, scaled to
// H x W, mirrored when flipped.
struct BoxDraw {
  CropBox box;
  bool flip = false;
};

// Source taps of output i of n over a box [start, start + len): the two
// neighbours and the weight of the second (align_corners = false, the
// coordinate clamped into the box).
struct Tap {
  int64_t lo, hi;
  double frac;
};
Tap tap(int64_t i, int64_t n, int64_t start, int64_t len) {
  double s = (static_cast<double>(i) + 0.5) * static_cast<double>(len) /
                 static_cast<double>(n) -
             0.5;
  s = std::min(std::max(s, 0.0), static_cast<double>(len - 1));
  const auto lo = static_cast<int64_t>(std::floor(s));
  const auto hi = std::min(lo + 1, len - 1);
  return {start + lo, start + hi, s - static_cast<double>(lo)};
}

template <typename T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, uint8_t>) {
    return static_cast<uint8_t>(std::min(255.0, std::max(0.0, std::round(v))));
  } else {
    return static_cast<T>(v);
  }
}

template <typename T>
void fill_resized_views(const T* in, T* out, const std::vector<BoxDraw>& draws,
                        int64_t k, int64_t C, int64_t H, int64_t W) {
  const int64_t plane = H * W;
  const int64_t image = C * plane;
  at::parallel_for(
      0, static_cast<int64_t>(draws.size()), 16,
      [&](int64_t begin, int64_t end) {
        std::vector<Tap> cols(static_cast<size_t>(W));
        std::vector<Tap> rows(static_cast<size_t>(H));
        for (int64_t v = begin; v < end; ++v) {
          const BoxDraw& d = draws[static_cast<size_t>(v)];
          for (int64_t x = 0; x < W; ++x) {
            cols[static_cast<size_t>(x)] =
                tap(d.flip ? W - 1 - x : x, W, d.box.x0, d.box.w);
          }
          for (int64_t y = 0; y < H; ++y) {
            rows[static_cast<size_t>(y)] = tap(y, H, d.box.y0, d.box.h);
          }
          const T* src = in + (v / k) * image;
          T* dst = out + v * image;
          for (int64_t c = 0; c < C; ++c) {
            const T* sp = src + c * plane;
            for (int64_t y = 0; y < H; ++y) {
              const Tap& r = rows[static_cast<size_t>(y)];
              const T* top = sp + r.lo * W;
              const T* bottom = sp + r.hi * W;
              T* drow = dst + c * plane + y * W;
              for (int64_t x = 0; x < W; ++x) {
                const Tap& q = cols[static_cast<size_t>(x)];
                const double t = (1 - q.frac) * static_cast<double>(top[q.lo]) +
                                 q.frac * static_cast<double>(top[q.hi]);
                const double b =
                    (1 - q.frac) * static_cast<double>(bottom[q.lo]) +
                    q.frac * static_cast<double>(bottom[q.hi]);
                drow[x] = from_double<T>((1 - r.frac) * t + r.frac * b);
              }
            }
          }
        }
      });
}

// Uniform on [0, 1) from 53 bits of one draw.
double uniform_unit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

}  // namespace

CropBox random_resized_box(std::int64_t height, std::int64_t width,
                           double scale_min, double scale_max,
                           std::mt19937_64& rng) {
  if (!(scale_min > 0 && scale_min <= scale_max && scale_max <= 1)) {
    throw std::invalid_argument(
        "random-resized crop: scales must satisfy 0 < min <= max <= 1, got " +
        std::to_string(scale_min) + " and " + std::to_string(scale_max));
  }
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double s = scale_min + (scale_max - scale_min) * uniform_unit(rng);
    const double ratio =
        std::exp(log_lo + (log_hi - log_lo) * uniform_unit(rng));
    const auto w =
        static_cast<int64_t>(std::llround(std::sqrt(s * area * ratio)));
    const auto h =
        static_cast<int64_t>(std::llround(std::sqrt(s * area / ratio)));
    if (w < 1 || h < 1 || w > width || h > height) continue;
    CropBox box;
    box.h = h;
    box.w = w;
    box.y0 = static_cast<int64_t>(
        uniform_index(rng, static_cast<std::uint64_t>(height - h + 1)));
    box.x0 = static_cast<int64_t>(
        uniform_index(rng, static_cast<std::uint64_t>(width - w + 1)));
    return box;
  }
  return {0, 0, height, width};
}

std::uint64_t uniform_index(std::mt19937_64& rng, std::uint64_t n) {
  if (n == 0)
    throw std::invalid_argument("uniform_index: n must be >= 1, got 0");
  // 2^64 mod n: draws below it would make small results more likely.
  const std::uint64_t threshold = (0 - n) % n;
  for (;;) {
    const std::uint64_t r = rng();
    if (r >= threshold) return r % n;
  }
}

at::Tensor to_float(const at::Tensor& images) {
  if (images.scalar_type() == at::kByte) {
    return images.to(torch::kFloat).div_(255.0);
  }
  return images.to(torch::kFloat);
}

ChannelStats compute_channel_stats(const ImageDataset& data) {
  if (data.size() == 0) {
    throw std::invalid_argument(
        "compute_channel_stats: the data set is empty (" + data.name() + ")");
  }
  const int64_t C = data.shape()[0];
  auto sum = torch::zeros({C}, torch::kDouble);
  auto sum_sq = torch::zeros({C}, torch::kDouble);
  constexpr int64_t kBlock = 4096;  // bounds the float copy's memory
  for (int64_t start = 0; start < data.size(); start += kBlock) {
    const int64_t n = std::min(kBlock, data.size() - start);
    auto x = data.images().narrow(0, start, n).to(torch::kDouble).div_(255.0);
    sum += x.sum({0, 2, 3});
    sum_sq += x.mul(x).sum({0, 2, 3});
  }
  const double count = static_cast<double>(data.size()) *
                       static_cast<double>(data.shape()[1] * data.shape()[2]);
  auto mean = sum / count;
  auto var = (sum_sq / count - mean * mean).clamp_min(0.0);
  auto sd = var.sqrt();
  ChannelStats out;
  for (int64_t c = 0; c < C; ++c) {
    out.mean.push_back(mean[c].item<double>());
    out.std.push_back(sd[c].item<double>());
  }
  return out;
}

at::Tensor standardize(const at::Tensor& images, const ChannelStats& stats) {
  if (images.dim() != 3 && images.dim() != 4) {
    throw std::invalid_argument(
        "standardize: images must be [C, H, W] or [B, C, H, W], got " +
        std::to_string(images.dim()) + " dimensions");
  }
  const int64_t C = images.size(images.dim() - 3);
  if (static_cast<int64_t>(stats.mean.size()) != C ||
      static_cast<int64_t>(stats.std.size()) != C) {
    throw std::invalid_argument(
        "standardize: stats have " + std::to_string(stats.mean.size()) +
        " means and " + std::to_string(stats.std.size()) +
        " stds, images have " + std::to_string(C) + " channels");
  }
  for (double s : stats.std) {
    if (!(s > 0)) {
      throw std::invalid_argument("standardize: std must be > 0, got " +
                                  std::to_string(s));
    }
  }
  auto x = to_float(images);
  auto opts = torch::TensorOptions().dtype(torch::kFloat).device(x.device());
  auto mean =
      torch::tensor(stats.mean, torch::kDouble).to(opts).view({C, 1, 1});
  auto sd = torch::tensor(stats.std, torch::kDouble).to(opts).view({C, 1, 1});
  return (x - mean) / sd;
}

at::Tensor augment_views(const at::Tensor& images, std::int64_t k,
                         const AugmentOptions& options, std::mt19937_64& rng,
                         c10::Device device) {
  if (!images.defined() || images.dim() != 4) {
    throw std::invalid_argument(
        "augment_views: images must be [B, C, H, W], got " +
        (images.defined() ? std::to_string(images.dim()) + " dimensions"
                          : std::string("undefined")));
  }
  if (images.scalar_type() != at::kByte && images.scalar_type() != at::kFloat) {
    throw std::invalid_argument(
        "augment_views: images must be uint8 or "
        "float32, got " +
        std::string(c10::toString(images.scalar_type())));
  }
  if (k < 1) {
    throw std::invalid_argument(
        "augment_views: k (augmentation multiplicity) "
        "must be >= 1, got " +
        std::to_string(k));
  }
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2),
                W = images.size(3);
  const int64_t pad = options.padding;
  if (pad < 0) {
    throw std::invalid_argument("augment_views: padding must be >= 0, got " +
                                std::to_string(pad));
  }
  if (options.pad_mode == PadMode::kReflect && (pad >= H || pad >= W)) {
    throw std::invalid_argument(
        "augment_views: reflect padding must be < height and width, got "
        "padding " +
        std::to_string(pad) + " for " + std::to_string(H) + "x" +
        std::to_string(W) + " images");
  }
  auto in = images.to(torch::kCPU).contiguous();
  auto out = torch::empty({B * k, C, H, W}, in.options());
  if (options.random_resized_crop) {
    // Drawn first, in row order, as below.
    std::vector<BoxDraw> boxes(static_cast<size_t>(B * k));
    for (auto& d : boxes) {
      d.box =
          random_resized_box(H, W, options.scale_min, options.scale_max, rng);
      const bool coin = uniform_index(rng, 2) == 1;
      d.flip = options.horizontal_flip && coin;
    }
    if (B > 0 && C > 0 && H > 0 && W > 0) {
      if (in.scalar_type() == at::kByte) {
        fill_resized_views(in.data_ptr<uint8_t>(), out.data_ptr<uint8_t>(),
                           boxes, k, C, H, W);
      } else {
        fill_resized_views(in.data_ptr<float>(), out.data_ptr<float>(), boxes,
                           k, C, H, W);
      }
    }
    return out.to(device);
  }
  // Draw everything first, in row order, so threads cannot change the result.
  std::vector<ViewDraw> draws(static_cast<size_t>(B * k));
  const auto span = static_cast<std::uint64_t>(2 * pad + 1);
  for (auto& d : draws) {
    d.dy = static_cast<int64_t>(uniform_index(rng, span));
    d.dx = static_cast<int64_t>(uniform_index(rng, span));
    const bool coin = uniform_index(rng, 2) == 1;
    d.flip = options.horizontal_flip && coin;
  }
  if (B > 0 && C > 0 && H > 0 && W > 0) {
    if (in.scalar_type() == at::kByte) {
      fill_views(in.data_ptr<uint8_t>(), out.data_ptr<uint8_t>(), draws, k, C,
                 H, W, pad, options.pad_mode);
    } else {
      fill_views(in.data_ptr<float>(), out.data_ptr<float>(), draws, k, C, H, W,
                 pad, options.pad_mode);
    }
  }
  return out.to(device);
}

at::Tensor augment(const at::Tensor& image, const AugmentOptions& options,
                   std::mt19937_64& rng) {
  if (!image.defined() || image.dim() != 3) {
    throw std::invalid_argument("augment: image must be [C, H, W]");
  }
  return augment_views(image.unsqueeze(0), 1, options, rng, image.device())[0];
}

Batch get_augmented_batch(const ImageDataset& data,
                          const std::vector<std::int64_t>& indices,
                          std::int64_t k, const AugmentOptions& options,
                          std::mt19937_64& rng, c10::Device device) {
  Batch b = data.get_batch(indices);
  b.images = augment_views(b.images, k, options, rng, device);
  b.labels = b.labels.repeat_interleave(k).to(device);
  b.groups = b.groups.repeat_interleave(k).to(device);
  return b;
}

}  // namespace dptrain::datasets
