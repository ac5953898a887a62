// Readers of the CIFAR-10 and CIFAR-100 binary versions.
#pragma once

#include <string>
#include <vector>

#include "dptrain/datasets/cifar_parser.h"
#include "dptrain/datasets/image_dataset.h"
#include "dptrain/datasets/split.h"

namespace dptrain::datasets {

/// Loads and concatenates CIFAR binary files (in the given order) into a data
/// set with images [N, 3, 32, 32]. Throws DatasetError naming the file for a
/// missing file, an empty file, a size that is not a whole number of records
/// (truncated data) or a label out of range.
ImageDataset load_cifar_files(const std::vector<std::string>& paths,
                              CifarVariant variant,
                              CifarLabel label = CifarLabel::kFine);

/// CIFAR-10 from `dir` (or its `cifar-10-batches-bin` subfolder):
/// data_batch_1.bin .. data_batch_5.bin for train, test_batch.bin for test.
ImageDataset load_cifar10(const std::string& dir, Split split = Split::kTrain);

/// CIFAR-100 from `dir` (or its `cifar-100-binary` subfolder): train.bin or
/// test.bin; fine labels (100 classes) by default, coarse (20) on request.
ImageDataset load_cifar100(const std::string& dir, Split split = Split::kTrain,
                           CifarLabel label = CifarLabel::kFine);

/// The folder holding the CIFAR files of `variant` (`dir` itself or its
/// standard subfolder), or "" when neither holds them.
std::string find_cifar_dir(const std::string& dir, CifarVariant variant);

}  // namespace dptrain::datasets
