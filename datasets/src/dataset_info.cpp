#include "dptrain/datasets/dataset_info.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "dptrain/datasets/cifar_reader.h"
#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/hdf5_reader.h"
#include "dptrain/datasets/idx_reader.h"
#include "dptrain/datasets/split.h"
#include "file_io.h"

namespace dptrain::datasets {
namespace fs = std::filesystem;

std::string resolve_dataset_path(const std::string& name) {
  return name == "fashion-mnist" ? std::string(kDefaultFashionMnistDir) : name;
}

std::string to_string(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::kIdx:
      return "idx";
    case DatasetFormat::kCifar10:
      return "cifar10";
    case DatasetFormat::kCifar100:
      return "cifar100";
    case DatasetFormat::kHdf5:
      return "hdf5";
    case DatasetFormat::kImageFolder:
      return "image-folder";
    case DatasetFormat::kImageCsv:
      return "image-csv";
  }
  return "unknown";
}

DatasetFormat detect_format(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) throw DatasetError(path, "no such file or folder");
  if (fs::is_regular_file(status)) {
    // HDF5 files start with an 8-byte signature (possibly at 512, 1024, ...
    // when a user block precedes it); the HDF5 library checks that for us.
    const auto ext = fs::path(path).extension().string();
    if (ext == ".h5" || ext == ".hdf5" || ext == ".he5") {
      return DatasetFormat::kHdf5;
    }
    if (ext == ".csv") return DatasetFormat::kImageCsv;
    throw DatasetError(path,
                       "not a recognised data set file (expected an HDF5 file "
                       "ending .h5/.hdf5, a .csv list of images, or a folder)");
  }
  if (has_idx_split(path, Split::kTrain) || has_idx_split(path, Split::kTest)) {
    return DatasetFormat::kIdx;
  }
  if (!find_cifar_dir(path, CifarVariant::kCifar10).empty()) {
    return DatasetFormat::kCifar10;
  }
  if (!find_cifar_dir(path, CifarVariant::kCifar100).empty()) {
    return DatasetFormat::kCifar100;
  }
  if (is_image_folder(path)) return DatasetFormat::kImageFolder;
  throw DatasetError(
      path,
      "not a recognised data set folder: expected IDX files "
      "(train-images-idx3-ubyte[.gz], t10k-...), CIFAR-10 "
      "(data_batch_1.bin ... test_batch.bin), CIFAR-100 (train.bin, "
      "test.bin) or class folders of images (<class>/*.jpg|png)");
}

std::vector<std::string> list_splits(const std::string& path) {
  const DatasetFormat format = detect_format(path);
  std::vector<std::string> out;
  switch (format) {
    case DatasetFormat::kIdx:
      for (Split s : {Split::kTrain, Split::kTest}) {
        if (has_idx_split(path, s)) out.push_back(to_string(s));
      }
      break;
    case DatasetFormat::kCifar10:
    case DatasetFormat::kCifar100: {
      const auto variant = format == DatasetFormat::kCifar10
                               ? CifarVariant::kCifar10
                               : CifarVariant::kCifar100;
      const auto dir = find_cifar_dir(path, variant);
      const bool ten = variant == CifarVariant::kCifar10;
      if (detail::is_file(dir + (ten ? "/data_batch_1.bin" : "/train.bin"))) {
        out.emplace_back("train");
      }
      if (detail::is_file(dir + (ten ? "/test_batch.bin" : "/test.bin"))) {
        out.emplace_back("test");
      }
      break;
    }
    case DatasetFormat::kHdf5:
      out = hdf5_splits(path);
      if (out.empty()) out.emplace_back("all");
      break;
    case DatasetFormat::kImageFolder:
      out = image_folder_splits(path);
      break;
    case DatasetFormat::kImageCsv:
      out = image_csv_splits(path);
      break;
  }
  return out;
}

ImageDataset load_dataset(const std::string& path, const std::string& split,
                          const ImageFolderOptions& images) {
  const DatasetFormat format = detect_format(path);
  if (format == DatasetFormat::kImageFolder) {
    return load_image_folder(path, split, images);
  }
  if (format == DatasetFormat::kImageCsv) {
    return load_image_csv(path, split, images);
  }
  if (format == DatasetFormat::kHdf5) {
    const auto splits = list_splits(path);
    require_split(splits, split, path);
    Hdf5Options options;
    if (split != "all") options.split = split;
    return load_hdf5(path, options);
  }
  const Split s = parse_split(split);
  switch (format) {
    case DatasetFormat::kIdx:
      return load_fashion_mnist(path, s);
    case DatasetFormat::kCifar10:
      return load_cifar10(path, s);
    default:
      return load_cifar100(path, s);
  }
}

SplitSummary summarize(const ImageDataset& data) {
  SplitSummary s;
  s.count = data.size();
  s.shape = data.shape();
  s.classes = data.num_classes();
  s.class_counts = data.class_counts();
  s.has_groups = data.has_groups();
  return s;
}

DatasetSummary describe_dataset(const std::string& path) {
  DatasetSummary out;
  out.path = path;
  out.format = to_string(detect_format(path));
  for (const auto& split : list_splits(path)) {
    out.splits.emplace_back(split, summarize(load_dataset(path, split)));
  }
  return out;
}

}  // namespace dptrain::datasets
