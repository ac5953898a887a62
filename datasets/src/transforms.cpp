#include "dptrain/datasets/transforms.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <stdexcept>

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

}  // namespace

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
  // Draw everything first, in row order, so threads cannot change the result.
  std::vector<ViewDraw> draws(static_cast<size_t>(B * k));
  const auto span = static_cast<std::uint64_t>(2 * pad + 1);
  for (auto& d : draws) {
    d.dy = static_cast<int64_t>(uniform_index(rng, span));
    d.dx = static_cast<int64_t>(uniform_index(rng, span));
    const bool coin = uniform_index(rng, 2) == 1;
    d.flip = options.horizontal_flip && coin;
  }
  auto in = images.to(torch::kCPU).contiguous();
  auto out = torch::empty({B * k, C, H, W}, in.options());
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
