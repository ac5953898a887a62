// An image classification data set held in memory: one uint8 tensor of
// images [N, C, H, W] and one int64 tensor of labels [N], optionally an int64
// group id per example (hospital, demographic, ...) for subgroup metrics.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::datasets {

/// The most classes a data set may have: labels lie in [0, kMaxClasses).
/// Far above any image benchmark (ImageNet-21k has 21,843 classes), and small
/// enough that a per-class vector (class_counts(), a model head) stays small;
/// a label beyond it is a corrupt or mislabelled file, not a class.
inline constexpr std::int64_t kMaxClasses = 65536;

/// One example. `image` is uint8 [C, H, W] (a view into the data set's
/// storage, on the CPU); `group` is -1 when the data set has no groups.
struct Example {
  at::Tensor image;
  std::int64_t label = 0;
  std::int64_t group = -1;
};

/// A batch of examples: images [B, C, H, W] (uint8 unless a transform made
/// them float), labels int64 [B], groups int64 [B] (-1 where unknown).
struct Batch {
  at::Tensor images;
  at::Tensor labels;
  at::Tensor groups;
};

/// Random-access, in-memory image data set. Copies share storage (tensors
/// are reference-counted); nothing mutates the storage after construction.
class ImageDataset {
 public:
  /// An empty data set (size 0, shape {0, 0, 0}).
  ImageDataset() = default;

  /// Takes images uint8 [N, C, H, W] and labels int64 [N] with values in
  /// [0, num_classes), 1 <= num_classes <= kMaxClasses, and optionally groups
  /// int64 [N] (values >= -1; an undefined tensor means no groups). All tensors
  /// must be on the CPU. `name` names the source in messages (a path,
  /// "fashion-mnist/train"). Throws std::invalid_argument naming the offending
  /// argument and value.
  ImageDataset(at::Tensor images, at::Tensor labels, std::int64_t num_classes,
               at::Tensor groups = {}, std::string name = "");

  /// Number of examples N.
  std::int64_t size() const { return size_; }
  /// Number of classes; labels lie in [0, num_classes()).
  std::int64_t num_classes() const { return num_classes_; }
  /// Shape of one image, {C, H, W}.
  std::array<std::int64_t, 3> shape() const { return shape_; }
  /// Where the data came from, for messages.
  const std::string& name() const { return name_; }
  /// True when a group id was loaded for each example.
  bool has_groups() const { return groups_.defined(); }

  /// Example i, 0 <= i < size(); throws std::out_of_range otherwise.
  Example get(std::int64_t i) const;

  /// The examples at `indices` (int64 [B] or a list), images uint8
  /// [B, C, H, W], labels [B], groups [B], all on `device`. Gathers with one
  /// index_select per tensor. Throws std::out_of_range for a bad index.
  Batch get_batch(const at::Tensor& indices,
                  c10::Device device = c10::Device(c10::kCPU)) const;
  Batch get_batch(const std::vector<std::int64_t>& indices,
                  c10::Device device = c10::Device(c10::kCPU)) const;

  /// A data set of the examples at `indices` (in that order), same classes.
  ImageDataset subset(const std::vector<std::int64_t>& indices,
                      const std::string& name = "") const;

  /// Number of examples of each class, size num_classes().
  std::vector<std::int64_t> class_counts() const;

  /// The storage: images uint8 [N, C, H, W], labels int64 [N], groups int64
  /// [N] (undefined when has_groups() is false). CPU, contiguous.
  const at::Tensor& images() const { return images_; }
  const at::Tensor& labels() const { return labels_; }
  const at::Tensor& groups() const { return groups_; }

 private:
  at::Tensor checked_indices(const at::Tensor& indices) const;

  at::Tensor images_;
  at::Tensor labels_;
  at::Tensor groups_;
  std::int64_t size_ = 0;
  std::int64_t num_classes_ = 0;
  std::array<std::int64_t, 3> shape_{0, 0, 0};
  std::string name_;
};

}  // namespace dptrain::datasets
