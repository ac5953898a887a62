#include "dptrain/datasets/idx_reader.h"

#include <torch/torch.h>

#include <cstring>

#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/idx_parser.h"
#include "file_io.h"

namespace dptrain::datasets {
namespace {

void require_uint8(const IdxArray& a, const std::string& path,
                   const char* what) {
  if (a.type != IdxType::kUint8) {
    char code[8];
    std::snprintf(code, sizeof code, "0x%02x", static_cast<unsigned>(a.type));
    throw DatasetError(path, std::string(what) +
                                 " must have element type uint8 (0x08), got " +
                                 code);
  }
}

// Parses `bytes`, read from `path`, as IDX and requires uint8 elements and
// `rank` dimensions; `what` ("a label file") and `dims` ("1 dimension [N]")
// word the errors. The array points into `bytes`.
IdxArray parse_uint8_idx(const std::vector<std::uint8_t>& bytes,
                         const std::string& path, const char* what,
                         std::size_t rank, const char* dims) {
  IdxArray a = parse_idx(bytes.data(), bytes.size(), path);
  require_uint8(a, path, what);
  if (a.dims.size() != rank) {
    throw DatasetError(path, std::string(what) + " must have " + dims +
                                 ", got " + std::to_string(a.dims.size()));
  }
  return a;
}

std::vector<std::string> idx_names(Split split, const char* kind, int rank) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string k = std::string(kind) + "-idx" + std::to_string(rank);
  return {prefix + "-" + k + "-ubyte.gz", prefix + "-" + k + "-ubyte",
          prefix + "-" + std::string(kind) + ".idx" + std::to_string(rank) +
              "-ubyte.gz",
          prefix + "-" + std::string(kind) + ".idx" + std::to_string(rank) +
              "-ubyte"};
}

}  // namespace

ImageDataset load_idx(const std::string& images_path,
                      const std::string& labels_path,
                      std::int64_t num_classes) {
  if (num_classes < 0) {
    throw std::invalid_argument("num_classes must be >= 0, got " +
                                std::to_string(num_classes));
  }
  const auto label_bytes = detail::read_file(labels_path);
  const IdxArray labels = parse_uint8_idx(label_bytes, labels_path,
                                          "a label file", 1, "1 dimension [N]");
  const auto image_bytes = detail::read_file(images_path);
  const IdxArray images = parse_uint8_idx(
      image_bytes, images_path, "an image file", 3, "3 dimensions [N, H, W]");
  const std::uint64_t n = images.dims[0];
  if (n != labels.dims[0]) {
    throw DatasetError(images_path,
                       "image/label count mismatch: " + std::to_string(n) +
                           " images, but " + labels_path + " has " +
                           std::to_string(labels.dims[0]) + " labels");
  }
  if (n > 0 && (images.dims[1] == 0 || images.dims[2] == 0)) {
    throw DatasetError(images_path, "images have zero height or width");
  }
  std::int64_t max_label = -1;
  for (std::size_t i = 0; i < labels.data_bytes; ++i) {
    const std::int64_t y = labels.data[i];
    if (num_classes > 0 && y >= num_classes) {
      throw DatasetError(labels_path, "label out of range: example " +
                                          std::to_string(i) + " has label " +
                                          std::to_string(y) + ", expected 0.." +
                                          std::to_string(num_classes - 1));
    }
    max_label = std::max(max_label, y);
  }
  const std::int64_t classes =
      num_classes > 0 ? num_classes : std::max<std::int64_t>(1, max_label + 1);
  const auto N = static_cast<int64_t>(n);
  const auto H = static_cast<int64_t>(images.dims[1]);
  const auto W = static_cast<int64_t>(images.dims[2]);
  auto x = torch::empty({N, 1, H, W}, torch::kByte);
  if (images.data_bytes > 0) {
    std::memcpy(x.data_ptr<uint8_t>(), images.data, images.data_bytes);
  }
  auto y = torch::empty({N}, torch::kLong);
  auto* yp = y.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) yp[i] = labels.data[i];
  return ImageDataset(std::move(x), std::move(y), classes, {}, images_path);
}

bool has_idx_split(const std::string& dir, Split split) {
  for (const char* kind : {"images", "labels"}) {
    bool found = false;
    for (const auto& name : idx_names(split, kind, kind[0] == 'i' ? 3 : 1)) {
      found = found || detail::is_file(dir + "/" + name);
    }
    if (!found) return false;
  }
  return true;
}

ImageDataset load_fashion_mnist(const std::string& dir, Split split) {
  const auto images = detail::find_file(dir, idx_names(split, "images", 3));
  const auto labels = detail::find_file(dir, idx_names(split, "labels", 1));
  return load_idx(images, labels, 10);
}

}  // namespace dptrain::datasets
