#include "dptrain/datasets/image_dataset.h"

#include <torch/torch.h>

#include <stdexcept>
#include <utility>

namespace dptrain::datasets {
namespace {

std::string where(const std::string& name) {
  return name.empty() ? std::string("ImageDataset")
                      : "ImageDataset(" + name + ")";
}

std::string sizes_string(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(t.size(i));
  }
  return s + "]";
}

// "<dtype> [sizes]", or "undefined".
std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  return std::string(c10::toString(t.scalar_type())) + " " + sizes_string(t);
}

// Throws std::invalid_argument("<what>, got <describe(t)>") unless t is
// defined, has `dim` dimensions and element type `type`.
void require_tensor(const at::Tensor& t, int64_t dim, at::ScalarType type,
                    const std::string& what) {
  if (!t.defined() || t.dim() != dim || t.scalar_type() != type) {
    throw std::invalid_argument(what + ", got " + describe(t));
  }
}

}  // namespace

ImageDataset::ImageDataset(at::Tensor images, at::Tensor labels,
                           std::int64_t num_classes, at::Tensor groups,
                           std::string name)
    : name_(std::move(name)) {
  const std::string w = where(name_);
  require_tensor(images, 4, at::kByte,
                 w + ": images must be a uint8 tensor [N, C, H, W]");
  require_tensor(labels, 1, at::kLong,
                 w + ": labels must be an int64 tensor [N]");
  if (!images.device().is_cpu() || !labels.device().is_cpu() ||
      (groups.defined() && !groups.device().is_cpu())) {
    throw std::invalid_argument(w + ": storage tensors must be on the CPU");
  }
  if (labels.size(0) != images.size(0)) {
    throw std::invalid_argument(
        w + ": image/label count mismatch: " + std::to_string(images.size(0)) +
        " images, " + std::to_string(labels.size(0)) + " labels");
  }
  if (num_classes < 1) {
    throw std::invalid_argument(w + ": num_classes must be >= 1, got " +
                                std::to_string(num_classes));
  }
  if (num_classes > kMaxClasses) {
    throw std::invalid_argument(
        w + ": num_classes must be <= " + std::to_string(kMaxClasses) +
        ", got " + std::to_string(num_classes));
  }
  for (int d = 1; d < 4; ++d) {
    if (images.size(d) < 1) {
      throw std::invalid_argument(w + ": images must have C, H, W >= 1, got " +
                                  sizes_string(images));
    }
  }
  if (labels.numel() > 0) {
    const auto lo = labels.min().item<int64_t>();
    const auto hi = labels.max().item<int64_t>();
    if (lo < 0 || hi >= num_classes) {
      throw std::invalid_argument(w + ": label out of range: labels span [" +
                                  std::to_string(lo) + ", " +
                                  std::to_string(hi) + "], expected 0.." +
                                  std::to_string(num_classes - 1));
    }
  }
  if (groups.defined()) {
    if (groups.dim() != 1 || groups.scalar_type() != at::kLong ||
        groups.size(0) != images.size(0)) {
      throw std::invalid_argument(
          w + ": groups must be an int64 tensor [N] with N = " +
          std::to_string(images.size(0)) + ", got " + describe(groups));
    }
    if (groups.numel() > 0 && groups.min().item<int64_t>() < -1) {
      throw std::invalid_argument(w + ": group ids must be >= -1, got " +
                                  std::to_string(groups.min().item<int64_t>()));
    }
    groups_ = groups.contiguous();
  }
  images_ = images.contiguous();
  labels_ = labels.contiguous();
  size_ = images_.size(0);
  num_classes_ = num_classes;
  shape_ = {images_.size(1), images_.size(2), images_.size(3)};
}

Example ImageDataset::get(std::int64_t i) const {
  if (i < 0 || i >= size_) {
    throw std::out_of_range(where(name_) + ": index " + std::to_string(i) +
                            " out of range for " + std::to_string(size_) +
                            " examples");
  }
  Example e;
  e.image = images_[i];
  e.label = labels_.data_ptr<int64_t>()[i];
  e.group = groups_.defined() ? groups_.data_ptr<int64_t>()[i] : -1;
  return e;
}

at::Tensor ImageDataset::checked_indices(const at::Tensor& indices) const {
  if (!indices.defined() || indices.dim() != 1 ||
      !(indices.scalar_type() == at::kLong ||
        indices.scalar_type() == at::kInt)) {
    throw std::invalid_argument(where(name_) +
                                ": indices must be an integer tensor [B]");
  }
  auto idx = indices.to(torch::kCPU, torch::kLong).contiguous();
  if (idx.numel() > 0) {
    const auto lo = idx.min().item<int64_t>();
    const auto hi = idx.max().item<int64_t>();
    if (lo < 0 || hi >= size_) {
      throw std::out_of_range(
          where(name_) + ": index " + std::to_string(lo < 0 ? lo : hi) +
          " out of range for " + std::to_string(size_) + " examples");
    }
  }
  return idx;
}

Batch ImageDataset::get_batch(const at::Tensor& indices,
                              c10::Device device) const {
  const auto idx = checked_indices(indices);
  Batch b;
  if (size_ == 0) {
    // Nothing to gather from; idx is empty here (checked above).
    b.images = torch::empty({0, shape_[0], shape_[1], shape_[2]}, torch::kByte);
    b.labels = torch::empty({0}, torch::kLong);
  } else {
    b.images = images_.index_select(0, idx);
    b.labels = labels_.index_select(0, idx);
  }
  b.groups = groups_.defined() && size_ > 0
                 ? groups_.index_select(0, idx)
                 : torch::full({idx.size(0)}, -1, torch::kLong);
  b.images = b.images.to(device);
  b.labels = b.labels.to(device);
  b.groups = b.groups.to(device);
  return b;
}

Batch ImageDataset::get_batch(const std::vector<std::int64_t>& indices,
                              c10::Device device) const {
  auto t = torch::tensor(indices, torch::kLong);
  return get_batch(t.view({static_cast<int64_t>(indices.size())}), device);
}

ImageDataset ImageDataset::subset(const std::vector<std::int64_t>& indices,
                                  const std::string& name) const {
  auto b = get_batch(indices);
  return ImageDataset(b.images, b.labels, num_classes_,
                      groups_.defined() ? b.groups : at::Tensor(),
                      name.empty() ? name_ : name);
}

std::vector<std::int64_t> ImageDataset::class_counts() const {
  std::vector<std::int64_t> counts(static_cast<size_t>(num_classes_), 0);
  const int64_t* y = labels_.defined() ? labels_.data_ptr<int64_t>() : nullptr;
  for (int64_t i = 0; i < size_; ++i) ++counts[static_cast<size_t>(y[i])];
  return counts;
}

}  // namespace dptrain::datasets
