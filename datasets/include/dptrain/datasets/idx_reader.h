// Readers of IDX files (MNIST, Fashion-MNIST), gzip-compressed or raw.
#pragma once

#include <cstdint>
#include <string>

#include "dptrain/datasets/image_dataset.h"
#include "dptrain/datasets/split.h"

namespace dptrain::datasets {

/// Where Debian's dataset-fashion-mnist package installs the data.
inline constexpr const char* kDefaultFashionMnistDir =
    "/usr/share/datasets/fashion-mnist";

/// Loads an image file (uint8 IDX, 3-D [N, H, W]; gzip or raw) and a label
/// file (uint8 IDX, 1-D [N]) into a data set with images [N, 1, H, W].
/// `num_classes` > 0 bounds the labels; 0 means max label + 1. Throws
/// DatasetError naming the file for: a missing file, wrong magic, truncated
/// data, header dimensions that disagree with the file size, a type other
/// than uint8, a wrong number of dimensions, an image/label count mismatch,
/// or a label >= num_classes.
ImageDataset load_idx(const std::string& images_path,
                      const std::string& labels_path,
                      std::int64_t num_classes = 0);

/// Fashion-MNIST (or MNIST: same file names) from `dir`: the split's
/// `<train|t10k>-{images-idx3,labels-idx1}-ubyte` files, with or without
/// `.gz` (`train-images.idx3-ubyte` spellings too). 10 classes; images
/// [N, 1, 28, 28]. Throws DatasetError as load_idx, or naming `dir` when a
/// file is absent.
ImageDataset load_fashion_mnist(
    const std::string& dir = kDefaultFashionMnistDir,
    Split split = Split::kTrain);

/// True when `dir` holds the IDX files of `split` (see load_fashion_mnist).
bool has_idx_split(const std::string& dir, Split split);

}  // namespace dptrain::datasets
