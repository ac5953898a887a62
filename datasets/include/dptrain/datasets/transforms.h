// Transforms of image batches: conversion to float, per-channel
// standardisation, and training augmentations (random crop after padding,
// horizontal flip), deterministic under an explicitly passed generator.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <random>
#include <vector>

#include "dptrain/datasets/image_dataset.h"

namespace dptrain::datasets {

/// An integer uniform on [0, n) from `rng`, by rejection, so the result is
/// the same with every standard library (std::uniform_int_distribution is
/// not). Requires n >= 1.
std::uint64_t uniform_index(std::mt19937_64& rng, std::uint64_t n);

/// uint8 images (any shape) → float32 in [0, 1] (x / 255). Float input is
/// returned as float32 unchanged.
at::Tensor to_float(const at::Tensor& images);

/// Per-channel mean and standard deviation of pixel values scaled to [0, 1].
struct ChannelStats {
  std::vector<double> mean;
  std::vector<double> std;
};

/// Mean and (population) standard deviation of each channel over all pixels
/// of all examples of `data`, in [0, 1] units. Statistics of private data
/// leak privacy: compute them on public data, or use published constants.
/// Throws std::invalid_argument for an empty data set.
ChannelStats compute_channel_stats(const ImageDataset& data);

/// (x - mean[c]) / std[c] for float images [C, H, W] or [B, C, H, W]; uint8
/// input is converted with to_float first. Throws std::invalid_argument when
/// the channel count differs from the stats or a std is <= 0.
at::Tensor standardize(const at::Tensor& images, const ChannelStats& stats);

/// How the border is filled before a random crop.
enum class PadMode { kZero, kReflect };

/// Training augmentations, applied per view in this order: pad by `padding`
/// on every side, crop back to H x W at a uniform random offset, then flip
/// left-right with probability 1/2. With random_resized_crop the crop is
/// instead a random box scaled back to H x W (random_resized_box).
struct AugmentOptions {
  std::int64_t padding = 4;  ///< 0 disables the crop
  PadMode pad_mode = PadMode::kReflect;
  bool horizontal_flip = true;
  /// Inception-style random-resized crop (Szegedy et al. 2015, torchvision's
  /// RandomResizedCrop) instead of pad + crop; padding is then not used.
  bool random_resized_crop = false;
  double scale_min = 0.08;  ///< box area / image area, lower end
  double scale_max = 1.0;   ///< upper end
};

/// A crop box: rows [y0, y0 + h), columns [x0, x0 + w).
struct CropBox {
  std::int64_t y0 = 0, x0 = 0, h = 0, w = 0;
};

/// The box of a random-resized crop of an H x W image: area fraction s
/// uniform on [scale_min, scale_max] and aspect ratio w/h log-uniform on
/// [3/4, 4/3], at a uniform position; up to 10 tries for a box that fits,
/// then the whole image. Uses only rng() (no std distributions), so a seed
/// gives the same boxes with every standard library. Throws
/// std::invalid_argument unless 0 < scale_min <= scale_max <= 1.
CropBox random_resized_box(std::int64_t height, std::int64_t width,
                           double scale_min, double scale_max,
                           std::mt19937_64& rng);

/// K independently augmented views of every image of `images` [B, C, H, W]
/// (uint8 or float32, any device; computed on the CPU), as [B*K, C, H, W]
/// of the same dtype on `device`: rows i*K .. i*K+K-1 are the views of image
/// i. K = 1 gives one augmented copy of each. Draws 3 numbers per view from
/// `rng` in row order (more with random_resized_crop), so a seed fixes the
/// result. A random-resized view is sampled bilinearly (PyTorch's
/// align_corners=false; uint8 rounded to nearest). Throws
/// std::invalid_argument for K < 1, padding < 0, or reflect padding >= H or W.
at::Tensor augment_views(const at::Tensor& images, std::int64_t k,
                         const AugmentOptions& options, std::mt19937_64& rng,
                         c10::Device device = c10::Device(c10::kCPU));

/// One augmented view of a single image [C, H, W] (same dtype and device).
at::Tensor augment(const at::Tensor& image, const AugmentOptions& options,
                   std::mt19937_64& rng);

/// The examples at `indices` with K augmented views each: images uint8
/// [B*K, C, H, W] (rows i*K .. i*K+K-1 from example i), labels and groups
/// repeated to [B*K] so a per-row loss needs no reshaping; all on `device`.
Batch get_augmented_batch(const ImageDataset& data,
                          const std::vector<std::int64_t>& indices,
                          std::int64_t k, const AugmentOptions& options,
                          std::mt19937_64& rng,
                          c10::Device device = c10::Device(c10::kCPU));

}  // namespace dptrain::datasets
