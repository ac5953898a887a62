// Recognising a data set on disk by its layout, loading any split of it, and
// summarising it (what `dptrain data info` prints).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dptrain/datasets/image_dataset.h"
#include "dptrain/datasets/image_folder.h"

namespace dptrain::datasets {

/// The path a data set name stands for: "fashion-mnist" is
/// kDefaultFashionMnistDir (where Debian's dataset-fashion-mnist installs
/// it); any other name is a path and comes back unchanged. Resolves what
/// `dptrain train --dataset` and `dptrain data info` take.
std::string resolve_dataset_path(const std::string& name);

/// Formats detect_format recognises.
enum class DatasetFormat {
  kIdx,
  kCifar10,
  kCifar100,
  kHdf5,
  kImageFolder,
  kImageCsv
};

/// "idx", "cifar10", "cifar100", "hdf5", "image-folder", "image-csv".
std::string to_string(DatasetFormat format);

/// The format of `path`: a folder with train/t10k IDX files (Fashion-MNIST,
/// MNIST), a CIFAR-10 folder (data_batch_*.bin / test_batch.bin, or its
/// cifar-10-batches-bin subfolder), a CIFAR-100 folder (train.bin / test.bin,
/// or cifar-100-binary), an HDF5 file, a folder of class folders of JPEG/PNG
/// files (image_folder.h), or a .csv file listing images. Throws DatasetError
/// naming the path
/// when it does not exist or matches none of these.
DatasetFormat detect_format(const std::string& path);

/// The splits present at `path`, in order: "train", "test" for folders (those
/// whose files exist); for HDF5 the groups hdf5_splits() finds, or "all" when
/// the arrays sit at the root; for image folders and CSV files those of
/// image_folder_splits / image_csv_splits.
std::vector<std::string> list_splits(const std::string& path);

/// Loads split `split` (one of list_splits(path)) of the data set at `path`
/// with each format's defaults (CIFAR-100: fine labels; Fashion-MNIST: 10
/// classes; image folders and CSV files: `images`' options, by default the
/// images' own size). Throws DatasetError for bad files,
/// std::invalid_argument for a split the data set lacks.
ImageDataset load_dataset(const std::string& path, const std::string& split,
                          const ImageFolderOptions& images = {});

/// Summary of one split.
struct SplitSummary {
  std::int64_t count = 0;
  std::array<std::int64_t, 3> shape{0, 0, 0};  ///< {C, H, W}
  std::int64_t classes = 0;
  std::vector<std::int64_t> class_counts;  ///< size `classes`
  bool has_groups = false;
};

/// Summary of a data set on disk.
struct DatasetSummary {
  std::string path;
  std::string format;  ///< to_string(DatasetFormat)
  std::vector<std::pair<std::string, SplitSummary>> splits;  ///< in order
};

/// Summary of an in-memory data set.
SplitSummary summarize(const ImageDataset& data);

/// Loads every split at `path` (validating each file fully) and summarises.
DatasetSummary describe_dataset(const std::string& path);

}  // namespace dptrain::datasets
