// Writer of HDF5 image sets in the layout load_hdf5 reads by default, e.g.
// the synthetic data of `dptrain diffusion sample`.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "dptrain/datasets/image_dataset.h"

namespace dptrain::datasets {

/// One split of the file: `name` is the HDF5 group holding its arrays
/// ("train", "test"; empty = the file's root, load_hdf5's default).
struct Hdf5Split {
  std::string name;
  ImageDataset data;
};

/// Attributes on the file's root group (provenance, privacy).
struct Hdf5WriteOptions {
  std::vector<std::pair<std::string, std::string>> string_attributes;
  std::vector<std::pair<std::string, double>> number_attributes;
};

/// Writes each split as "x" (uint8 [N, H, W, C], channels last as
/// PatchCamelyon and load_hdf5 expect), "y" (int64 [N]) and, when the data
/// set has groups, "groups" (int64 [N]), so load_hdf5(path, {split = name})
/// returns the same images, labels and groups. The file is written to
/// "<path>.tmp.<pid>" and renamed over `path`, so a reader never sees half a
/// file. Throws std::invalid_argument for no splits, a repeated split name,
/// or a root split beside named ones; DatasetError naming the file when it
/// cannot be written.
void write_hdf5(const std::string& path, const std::vector<Hdf5Split>& splits,
                const Hdf5WriteOptions& options = {});

/// One data set at the root of the file (write_hdf5 with one unnamed split).
void write_hdf5(const std::string& path, const ImageDataset& data,
                const Hdf5WriteOptions& options = {});

}  // namespace dptrain::datasets
