#include "dptrain/datasets/subsets.h"

#include <torch/torch.h>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>

#include "dptrain/datasets/transforms.h"

namespace dptrain::datasets {

std::vector<std::int64_t> seeded_permutation(std::int64_t n,
                                             std::uint64_t seed) {
  if (n < 0) {
    throw std::invalid_argument("seeded_permutation: n must be >= 0, got " +
                                std::to_string(n));
  }
  std::vector<std::int64_t> p(static_cast<size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(
        uniform_index(rng, static_cast<std::uint64_t>(i + 1)));
    std::swap(p[static_cast<size_t>(i)], p[static_cast<size_t>(j)]);
  }
  return p;
}

std::pair<ImageDataset, ImageDataset> split_train_validation(
    const ImageDataset& data, std::int64_t validation_size,
    std::uint64_t seed) {
  if (validation_size < 0 || validation_size > data.size()) {
    throw std::invalid_argument("validation_size must be in [0, " +
                                std::to_string(data.size()) + "], got " +
                                std::to_string(validation_size));
  }
  const auto perm = seeded_permutation(data.size(), seed);
  std::vector<std::int64_t> val(perm.begin(), perm.begin() + validation_size);
  std::vector<std::int64_t> train(perm.begin() + validation_size, perm.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  return {data.subset(train, data.name() + "[train part]"),
          data.subset(val, data.name() + "[validation part]")};
}

ImageDataset subset_by_classes(const ImageDataset& data,
                               const std::vector<std::int64_t>& classes,
                               bool relabel) {
  if (classes.empty()) {
    throw std::invalid_argument("classes must not be empty");
  }
  std::vector<std::int64_t> position(static_cast<size_t>(data.num_classes()),
                                     -1);
  for (size_t i = 0; i < classes.size(); ++i) {
    const std::int64_t c = classes[i];
    if (c < 0 || c >= data.num_classes()) {
      throw std::invalid_argument("classes: class " + std::to_string(c) +
                                  " is outside [0, " +
                                  std::to_string(data.num_classes()) + ")");
    }
    if (position[static_cast<size_t>(c)] >= 0) {
      throw std::invalid_argument("classes: class " + std::to_string(c) +
                                  " is listed twice");
    }
    position[static_cast<size_t>(c)] = static_cast<std::int64_t>(i);
  }
  std::vector<std::int64_t> keep;
  const auto* y = data.labels().data_ptr<int64_t>();
  for (std::int64_t i = 0; i < data.size(); ++i) {
    if (position[static_cast<size_t>(y[i])] >= 0) keep.push_back(i);
  }
  std::string name = data.name() + "[classes";
  for (auto c : classes) name += " " + std::to_string(c);
  name += "]";
  ImageDataset sub = data.subset(keep, name);
  if (!relabel) return sub;
  auto labels = sub.labels().clone();
  auto* l = labels.data_ptr<int64_t>();
  for (std::int64_t i = 0; i < labels.numel(); ++i) {
    l[i] = position[static_cast<size_t>(l[i])];
  }
  return ImageDataset(sub.images(), labels,
                      static_cast<std::int64_t>(classes.size()),
                      sub.has_groups() ? sub.groups() : at::Tensor(), name);
}

}  // namespace dptrain::datasets
