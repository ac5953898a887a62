// Reader of HDF5 image sets (the PatchCamelyon layout; also how users bring
// ImageNet, Camelyon17 and others: see datasets/README.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/datasets/image_dataset.h"

namespace dptrain::datasets {

/// Where the arrays live inside the file(s). Names are HDF5 paths relative to
/// `split` (or to the root when `split` is empty).
struct Hdf5Options {
  /// uint8 [N, H, W, C] (or [N, H, W], read as C = 1). Empty: "x", else
  /// "images".
  std::string images_dataset;
  /// Integer [N] (or [N, 1, ..., 1], as PatchCamelyon's y). Empty: "y", else
  /// "labels".
  std::string labels_dataset;
  /// Integer [N], a group id per example (>= -1; -1 = unknown). Empty: read
  /// "groups" when present; a name given here must exist.
  std::string groups_dataset;
  /// File holding labels and groups when not the images file (PatchCamelyon
  /// ships ..._x.h5 and ..._y.h5). Empty: the images file.
  std::string labels_file;
  /// HDF5 group holding the split's arrays ("train", "test"); empty: root.
  std::string split;
  /// > 0: labels must lie in [0, num_classes) (at most kMaxClasses).
  /// 0: max label + 1, so a label >= kMaxClasses is refused.
  std::int64_t num_classes = 0;
  /// Images are read this many bytes' worth of rows at a time (and
  /// transposed to channels-first), bounding the extra memory while loading.
  std::size_t read_block_bytes = std::size_t{64} << 20;
};

/// Loads an HDF5 image set into images [N, C, H, W]. Throws DatasetError
/// naming the file for: a missing file or one that is not HDF5, a missing
/// dataset, images that are not uint8 or not rank 3/4, labels or groups that
/// are not integers or not [N], an image/label count mismatch, a label
/// outside [0, num_classes) (or negative, or >= kMaxClasses), a group id
/// < -1; std::invalid_argument for num_classes outside [0, kMaxClasses].
ImageDataset load_hdf5(const std::string& path,
                       const Hdf5Options& options = {});

/// The HDF5 groups of `path` among "train", "valid", "val", "validation" and
/// "test" that hold an images dataset ("x" or "images"), in that order; an
/// empty list when the arrays sit at the root. Throws DatasetError for a
/// missing or non-HDF5 file.
std::vector<std::string> hdf5_splits(const std::string& path);

}  // namespace dptrain::datasets
