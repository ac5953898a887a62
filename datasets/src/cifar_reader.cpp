#include "dptrain/datasets/cifar_reader.h"

#include <torch/torch.h>

#include <cstring>
#include <filesystem>

#include "dptrain/datasets/errors.h"
#include "file_io.h"

namespace dptrain::datasets {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> split_files(CifarVariant variant, Split split) {
  if (variant == CifarVariant::kCifar100) {
    return {split == Split::kTrain ? "train.bin" : "test.bin"};
  }
  if (split == Split::kTest) return {"test_batch.bin"};
  std::vector<std::string> out;
  for (int i = 1; i <= 5; ++i) {
    out.push_back("data_batch_" + std::to_string(i) + ".bin");
  }
  return out;
}

const char* subfolder(CifarVariant variant) {
  return variant == CifarVariant::kCifar10 ? "cifar-10-batches-bin"
                                           : "cifar-100-binary";
}

ImageDataset load_cifar_dir(const std::string& dir, CifarVariant variant,
                            Split split, CifarLabel label) {
  std::string base = find_cifar_dir(dir, variant);
  if (base.empty()) base = dir;  // find_file below names what is missing
  std::vector<std::string> paths;
  for (const auto& name : split_files(variant, split)) {
    paths.push_back(detail::find_file(base, {name}));
  }
  return load_cifar_files(paths, variant, label);
}

}  // namespace

std::string find_cifar_dir(const std::string& dir, CifarVariant variant) {
  const std::string probe = split_files(variant, Split::kTest).front();
  for (const auto& candidate :
       {fs::path(dir), fs::path(dir) / subfolder(variant)}) {
    if (detail::is_file((candidate / probe).string()) ||
        detail::is_file(
            (candidate / split_files(variant, Split::kTrain).front())
                .string())) {
      return candidate.string();
    }
  }
  return "";
}

ImageDataset load_cifar_files(const std::vector<std::string>& paths,
                              CifarVariant variant, CifarLabel label) {
  if (paths.empty()) {
    throw std::invalid_argument("load_cifar_files: paths must not be empty");
  }
  std::vector<at::Tensor> images;
  std::vector<at::Tensor> labels;
  for (const auto& path : paths) {
    const auto bytes = detail::read_file(path);
    const CifarRecords rec =
        parse_cifar(bytes.data(), bytes.size(), path, variant, label);
    const auto n = static_cast<int64_t>(rec.size());
    auto x = torch::empty({n, kCifarChannels, kCifarHeight, kCifarWidth},
                          torch::kByte);
    auto* xp = x.data_ptr<uint8_t>();
    for (std::size_t i = 0; i < rec.size(); ++i) {
      std::memcpy(xp + i * kCifarImageBytes, rec.image(i), kCifarImageBytes);
    }
    images.push_back(std::move(x));
    labels.push_back(torch::tensor(rec.labels, torch::kLong).view({n}));
  }
  auto x = images.size() == 1 ? images[0] : torch::cat(images, 0);
  auto y = labels.size() == 1 ? labels[0] : torch::cat(labels, 0);
  return ImageDataset(
      std::move(x), std::move(y), cifar_num_classes(variant, label), {},
      paths.size() == 1 ? paths[0] : fs::path(paths[0]).parent_path().string());
}

ImageDataset load_cifar10(const std::string& dir, Split split) {
  return load_cifar_dir(dir, CifarVariant::kCifar10, split, CifarLabel::kFine);
}

ImageDataset load_cifar100(const std::string& dir, Split split,
                           CifarLabel label) {
  return load_cifar_dir(dir, CifarVariant::kCifar100, split, label);
}

}  // namespace dptrain::datasets
