// Deterministic subsets of a data set: a validation split carved from the
// training set, and the examples of chosen classes.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "dptrain/datasets/image_dataset.h"

namespace dptrain::datasets {

/// Splits `data` into (train, validation) with `validation_size` examples in
/// validation, chosen uniformly at random by a permutation seeded with `seed`
/// (the same seed gives the same split on every platform). Both parts keep
/// the original order of their examples. Throws std::invalid_argument when
/// validation_size is negative or larger than data.size().
std::pair<ImageDataset, ImageDataset> split_train_validation(
    const ImageDataset& data, std::int64_t validation_size, std::uint64_t seed);

/// The indices 0..n-1 permuted by Fisher–Yates under a std::mt19937_64
/// seeded with `seed`, drawing indices with uniform_index (below), so the
/// permutation is identical across standard libraries.
std::vector<std::int64_t> seeded_permutation(std::int64_t n,
                                             std::uint64_t seed);

/// The examples whose label is in `classes`, in their original order. With
/// `relabel`, labels become positions in `classes` (classes {5, ..., 9} map
/// to 0..4) and num_classes() becomes classes.size(); without it labels and
/// num_classes() are kept. Throws std::invalid_argument for an empty list, a
/// repeated class, or a class outside [0, data.num_classes()).
ImageDataset subset_by_classes(const ImageDataset& data,
                               const std::vector<std::int64_t>& classes,
                               bool relabel = true);

}  // namespace dptrain::datasets
