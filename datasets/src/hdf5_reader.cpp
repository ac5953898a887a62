#include "dptrain/datasets/hdf5_reader.h"

#include <hdf5.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <optional>

#include "dptrain/datasets/errors.h"
#include "file_io.h"
#include "hdf5_handle.h"

namespace dptrain::datasets {
namespace {

using detail::Handle;
using detail::join;
using detail::QuietHdf5Errors;

// H5Lexists fails (rather than answering false) when an intermediate group is
// missing, so walk the path one component at a time.
bool link_exists(hid_t file, const std::string& path) {
  std::size_t pos = 0;
  while (true) {
    const std::size_t slash = path.find('/', pos);
    const std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
      return false;
    }
    if (slash == std::string::npos) return true;
    pos = slash + 1;
  }
}

bool is_dataset(hid_t file, const std::string& path) {
  if (!link_exists(file, path)) return false;
  Handle obj(H5Oopen(file, path.c_str(), H5P_DEFAULT), &H5Oclose);
  return obj.ok() && H5Iget_type(obj.get()) == H5I_DATASET;
}

Handle open_file(const std::string& path) {
  if (!detail::is_file(path)) {
    detail::read_file(path);  // throws the right "no such file" / "folder"
  }
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw DatasetError(path, "not an HDF5 file");
  }
  Handle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), &H5Fclose);
  if (!f.ok()) throw DatasetError(path, "cannot open as HDF5");
  return f;
}

// The first of `names` that is a dataset under `split`; throws naming all.
std::string pick_dataset(hid_t file, const std::string& path,
                         const std::string& split,
                         const std::vector<std::string>& names,
                         const char* what) {
  for (const auto& n : names) {
    if (is_dataset(file, join(split, n))) return join(split, n);
  }
  std::string list;
  for (const auto& n : names) {
    list += (list.empty() ? "\"" : ", \"") + join(split, n) + "\"";
  }
  throw DatasetError(
      path, std::string("missing dataset: no ") + what + " dataset " + list);
}

struct Shape {
  std::vector<hsize_t> dims;
  H5T_class_t cls = H5T_NO_CLASS;
  std::size_t bytes = 0;
  H5T_sign_t sign = H5T_SGN_ERROR;
};

Shape describe(hid_t dset, const std::string& path, const std::string& name) {
  Handle space(H5Dget_space(dset), &H5Sclose);
  Handle type(H5Dget_type(dset), &H5Tclose);
  if (!space.ok() || !type.ok()) {
    throw DatasetError(path,
                       "cannot read the shape of dataset \"" + name + "\"");
  }
  Shape s;
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) {
    throw DatasetError(path, "dataset \"" + name + "\" has no simple shape");
  }
  s.dims.resize(static_cast<std::size_t>(rank));
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), s.dims.data(), nullptr);
  s.cls = H5Tget_class(type.get());
  s.bytes = H5Tget_size(type.get());
  s.sign = s.cls == H5T_INTEGER ? H5Tget_sign(type.get()) : H5T_SGN_ERROR;
  return s;
}

std::string hdf5_dims_string(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(dims[i]);
  }
  return s + "]";
}

std::string type_string(const Shape& s) {
  switch (s.cls) {
    case H5T_INTEGER:
      return std::string(s.sign == H5T_SGN_NONE ? "uint" : "int") +
             std::to_string(8 * s.bytes);
    case H5T_FLOAT:
      return "float" + std::to_string(8 * s.bytes);
    case H5T_STRING:
      return "string";
    default:
      return "a non-numeric type";
  }
}

// Reads an integer dataset of shape [N] or [N, 1, ..., 1] as int64 [N].
at::Tensor read_int_vector(hid_t file, const std::string& path,
                           const std::string& name, const char* what) {
  Handle dset(H5Dopen2(file, name.c_str(), H5P_DEFAULT), &H5Dclose);
  if (!dset.ok())
    throw DatasetError(path, "cannot open dataset \"" + name + "\"");
  const Shape s = describe(dset.get(), path, name);
  if (s.cls != H5T_INTEGER) {
    throw DatasetError(
        path, std::string("wrong dtype: ") + what + " dataset \"" + name +
                  "\" must hold integers, got " + type_string(s));
  }
  const bool vector_like =
      !s.dims.empty() && std::all_of(s.dims.begin() + 1, s.dims.end(),
                                     [](hsize_t d) { return d == 1; });
  if (!vector_like) {
    throw DatasetError(path, std::string("wrong rank: ") + what +
                                 " dataset \"" + name +
                                 "\" must be [N] (or [N, 1, ...]), got " +
                                 hdf5_dims_string(s.dims));
  }
  if (s.dims[0] >
      static_cast<hsize_t>(std::numeric_limits<int32_t>::max()) * 64) {
    throw DatasetError(path,
                       std::string(what) + " dataset \"" + name +
                           "\" is too large: " + hdf5_dims_string(s.dims));
  }
  auto out = torch::empty({static_cast<int64_t>(s.dims[0])}, torch::kLong);
  if (s.dims[0] > 0 && H5Dread(dset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL,
                               H5P_DEFAULT, out.data_ptr<int64_t>()) < 0) {
    throw DatasetError(path, "cannot read dataset \"" + name + "\"");
  }
  return out;
}

// Reads uint8 [N, H, W, C] in blocks of rows into [N, C, H, W], so the
// transient buffer stays small however large the set.
at::Tensor read_images(hid_t dset, const std::string& path,
                       const std::string& name, const Shape& s,
                       std::size_t block_bytes) {
  const bool has_c = s.dims.size() == 4;
  const hsize_t n = s.dims[0], h = s.dims[1], w = s.dims[2],
                c = has_c ? s.dims[3] : 1;
  constexpr hsize_t kMaxBytes = hsize_t{1} << 40;  // 1 TiB: far past RAM
  hsize_t per_image = 1;
  for (hsize_t d : {h, w, c}) {
    if (d == 0) {
      throw DatasetError(
          path, "images dataset \"" + name +
                    "\" has a zero dimension: " + hdf5_dims_string(s.dims));
    }
    if (per_image > kMaxBytes / d) {
      throw DatasetError(path,
                         "images dataset \"" + name +
                             "\" is too large: " + hdf5_dims_string(s.dims));
    }
    per_image *= d;
  }
  if (n > 0 && per_image > kMaxBytes / n) {
    throw DatasetError(path, "images dataset \"" + name + "\" is too large: " +
                                 hdf5_dims_string(s.dims));
  }
  auto out = torch::empty({static_cast<int64_t>(n), static_cast<int64_t>(c),
                           static_cast<int64_t>(h), static_cast<int64_t>(w)},
                          torch::kByte);
  if (n == 0) return out;
  const hsize_t block = std::max<hsize_t>(1, block_bytes / per_image);
  auto buf = torch::empty(
      {static_cast<int64_t>(std::min(block, n)), static_cast<int64_t>(h),
       static_cast<int64_t>(w), static_cast<int64_t>(c)},
      torch::kByte);
  Handle file_space(H5Dget_space(dset), &H5Sclose);
  for (hsize_t start = 0; start < n; start += block) {
    const hsize_t rows = std::min(block, n - start);
    std::vector<hsize_t> offset(s.dims.size(), 0), count(s.dims);
    offset[0] = start;
    count[0] = rows;
    Handle mem_space(
        H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
        &H5Sclose);
    if (!file_space.ok() || !mem_space.ok() ||
        H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset.data(),
                            nullptr, count.data(), nullptr) < 0 ||
        H5Dread(dset, H5T_NATIVE_UINT8, mem_space.get(), file_space.get(),
                H5P_DEFAULT, buf.data_ptr<uint8_t>()) < 0) {
      throw DatasetError(path, "cannot read images dataset \"" + name +
                                   "\" (rows " + std::to_string(start) + ".." +
                                   std::to_string(start + rows - 1) + ")");
    }
    const auto r = static_cast<int64_t>(rows);
    out.narrow(0, static_cast<int64_t>(start), r)
        .copy_(buf.narrow(0, 0, r).permute({0, 3, 1, 2}));
  }
  return out;
}

}  // namespace

ImageDataset load_hdf5(const std::string& path, const Hdf5Options& options) {
  if (options.num_classes < 0) {
    throw std::invalid_argument("num_classes must be >= 0, got " +
                                std::to_string(options.num_classes));
  }
  if (options.num_classes > kMaxClasses) {
    throw std::invalid_argument(
        "num_classes must be <= " + std::to_string(kMaxClasses) + ", got " +
        std::to_string(options.num_classes));
  }
  QuietHdf5Errors quiet;
  Handle file = open_file(path);
  const std::string images_name =
      options.images_dataset.empty()
          ? pick_dataset(file.get(), path, options.split, {"x", "images"},
                         "images")
          : pick_dataset(file.get(), path, options.split,
                         {options.images_dataset}, "images");

  at::Tensor images;
  {
    Handle dset(H5Dopen2(file.get(), images_name.c_str(), H5P_DEFAULT),
                &H5Dclose);
    if (!dset.ok()) {
      throw DatasetError(path, "cannot open dataset \"" + images_name + "\"");
    }
    const Shape s = describe(dset.get(), path, images_name);
    if (s.cls != H5T_INTEGER || s.bytes != 1 || s.sign != H5T_SGN_NONE) {
      throw DatasetError(path, "wrong dtype: images dataset \"" + images_name +
                                   "\" must be uint8, got " + type_string(s));
    }
    if (s.dims.size() != 3 && s.dims.size() != 4) {
      throw DatasetError(path,
                         "wrong rank: images dataset \"" + images_name +
                             "\" must be [N, H, W, C] or [N, H, W], got " +
                             hdf5_dims_string(s.dims));
    }
    images =
        read_images(dset.get(), path, images_name, s, options.read_block_bytes);
  }

  const std::string& label_path =
      options.labels_file.empty() ? path : options.labels_file;
  std::optional<Handle> label_file_storage;
  hid_t label_file = file.get();
  if (!options.labels_file.empty()) {
    label_file_storage.emplace(open_file(options.labels_file));
    label_file = label_file_storage->get();
  }
  const std::string labels_name =
      options.labels_dataset.empty()
          ? pick_dataset(label_file, label_path, options.split, {"y", "labels"},
                         "labels")
          : pick_dataset(label_file, label_path, options.split,
                         {options.labels_dataset}, "labels");
  auto labels = read_int_vector(label_file, label_path, labels_name, "labels");
  const int64_t n = images.size(0);
  if (labels.size(0) != n) {
    throw DatasetError(label_path,
                       "image/label count mismatch: " + std::to_string(n) +
                           " images in \"" + images_name + "\", " +
                           std::to_string(labels.size(0)) + " labels in \"" +
                           labels_name + "\"");
  }
  int64_t classes = options.num_classes;
  if (n > 0) {
    const auto lo = labels.min().item<int64_t>();
    const auto hi = labels.max().item<int64_t>();
    if (lo < 0 || (options.num_classes > 0 && hi >= options.num_classes)) {
      const int64_t bad = lo < 0 ? lo : hi;
      throw DatasetError(
          label_path,
          "label out of range: dataset \"" + labels_name + "\" holds " +
              std::to_string(bad) +
              (options.num_classes > 0
                   ? ", expected 0.." + std::to_string(options.num_classes - 1)
                   : std::string(", expected labels >= 0")));
    }
    // The class count comes from the labels here: bound it before anything
    // sizes a per-class vector (or a model head) by it.
    if (classes == 0 && hi >= kMaxClasses) {
      throw DatasetError(label_path,
                         "label out of range: dataset \"" + labels_name +
                             "\" holds " + std::to_string(hi) +
                             ", above the largest supported label " +
                             std::to_string(kMaxClasses - 1));
    }
    if (classes == 0) classes = hi + 1;
  }
  if (classes == 0) classes = 1;

  at::Tensor groups;
  std::string groups_name;
  if (!options.groups_dataset.empty()) {
    groups_name = pick_dataset(label_file, label_path, options.split,
                               {options.groups_dataset}, "groups");
  } else if (is_dataset(label_file, join(options.split, "groups"))) {
    groups_name = join(options.split, "groups");
  }
  if (!groups_name.empty()) {
    groups = read_int_vector(label_file, label_path, groups_name, "groups");
    if (groups.size(0) != n) {
      throw DatasetError(label_path,
                         "image/group count mismatch: " + std::to_string(n) +
                             " images, " + std::to_string(groups.size(0)) +
                             " group ids in \"" + groups_name + "\"");
    }
    if (n > 0 && groups.min().item<int64_t>() < -1) {
      throw DatasetError(label_path,
                         "group id out of range: dataset \"" + groups_name +
                             "\" holds " +
                             std::to_string(groups.min().item<int64_t>()) +
                             ", expected >= -1 (-1 = unknown)");
    }
  }
  return ImageDataset(
      std::move(images), std::move(labels), classes, std::move(groups),
      options.split.empty() ? path : path + ":" + options.split);
}

std::vector<std::string> hdf5_splits(const std::string& path) {
  QuietHdf5Errors quiet;
  Handle file = open_file(path);
  std::vector<std::string> out;
  for (const char* split : {"train", "valid", "val", "validation", "test"}) {
    for (const char* name : {"x", "images"}) {
      if (is_dataset(file.get(), join(split, name))) {
        out.emplace_back(split);
        break;
      }
    }
  }
  return out;
}

}  // namespace dptrain::datasets
