#include "dptrain/datasets/hdf5_writer.h"

#include <fcntl.h>
#include <hdf5.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <stdexcept>
#include <system_error>

#include "dptrain/datasets/errors.h"
#include "hdf5_handle.h"

namespace dptrain::datasets {
namespace {

using detail::Handle;
using detail::join;

void write_array(hid_t where, const std::string& file, const std::string& name,
                 const std::vector<hsize_t>& dims, hid_t file_type,
                 hid_t memory_type, const void* data) {
  Handle space(
      H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
      &H5Sclose);
  if (!space.ok()) throw DatasetError(file, "cannot describe \"" + name + "\"");
  Handle dset(H5Dcreate2(where, name.c_str(), file_type, space.get(),
                         H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
              &H5Dclose);
  if (!dset.ok()) throw DatasetError(file, "cannot create \"" + name + "\"");
  const bool empty = !dims.empty() && dims.front() == 0;
  if (!empty && H5Dwrite(dset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                         data) < 0) {
    throw DatasetError(file, "cannot write \"" + name + "\"");
  }
}

void write_split(hid_t file, const std::string& path, const Hdf5Split& split) {
  const ImageDataset& d = split.data;
  const auto s = d.shape();
  // [N, C, H, W] → [N, H, W, C], the layout load_hdf5 transposes back.
  const at::Tensor images =
      d.size() > 0 ? d.images().permute({0, 2, 3, 1}).contiguous()
                   : torch::zeros({0, s[1], s[2], s[0]}, torch::kUInt8);
  const at::Tensor labels =
      d.size() > 0 ? d.labels().contiguous() : torch::zeros({0}, torch::kLong);
  write_array(file, path, join(split.name, "x"),
              {static_cast<hsize_t>(d.size()), static_cast<hsize_t>(s[1]),
               static_cast<hsize_t>(s[2]), static_cast<hsize_t>(s[0])},
              H5T_STD_U8LE, H5T_NATIVE_UINT8, images.data_ptr());
  write_array(file, path, join(split.name, "y"),
              {static_cast<hsize_t>(d.size())}, H5T_STD_I64LE, H5T_NATIVE_INT64,
              labels.data_ptr());
  if (d.has_groups()) {
    const at::Tensor groups = d.groups().contiguous();
    write_array(file, path, join(split.name, "groups"),
                {static_cast<hsize_t>(d.size())}, H5T_STD_I64LE,
                H5T_NATIVE_INT64, groups.data_ptr());
  }
}

void write_attributes(hid_t file, const std::string& path,
                      const Hdf5WriteOptions& options) {
  Handle root(H5Gopen2(file, "/", H5P_DEFAULT), &H5Gclose);
  Handle scalar(H5Screate(H5S_SCALAR), &H5Sclose);
  if (!root.ok() || !scalar.ok()) {
    throw DatasetError(path, "cannot open the root group for attributes");
  }
  for (const auto& [name, value] : options.number_attributes) {
    Handle a(H5Acreate2(root.get(), name.c_str(), H5T_IEEE_F64LE, scalar.get(),
                        H5P_DEFAULT, H5P_DEFAULT),
             &H5Aclose);
    if (!a.ok() || H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &value) < 0) {
      throw DatasetError(path, "cannot write attribute \"" + name + "\"");
    }
  }
  for (const auto& [name, value] : options.string_attributes) {
    Handle type(H5Tcopy(H5T_C_S1), &H5Tclose);
    if (!type.ok() || H5Tset_size(type.get(), value.size() + 1) < 0) {
      throw DatasetError(path, "cannot write attribute \"" + name + "\"");
    }
    Handle a(H5Acreate2(root.get(), name.c_str(), type.get(), scalar.get(),
                        H5P_DEFAULT, H5P_DEFAULT),
             &H5Aclose);
    if (!a.ok() || H5Awrite(a.get(), type.get(), value.c_str()) < 0) {
      throw DatasetError(path, "cannot write attribute \"" + name + "\"");
    }
  }
}

void check_splits(const std::vector<Hdf5Split>& splits) {
  if (splits.empty()) throw std::invalid_argument("write_hdf5: no splits");
  std::set<std::string> names;
  for (const auto& s : splits) {
    if (!names.insert(s.name).second) {
      throw std::invalid_argument("write_hdf5: split \"" + s.name +
                                  "\" given twice");
    }
    if (s.name.find('/') != std::string::npos) {
      throw std::invalid_argument("write_hdf5: split name \"" + s.name +
                                  "\" must not contain '/'");
    }
  }
  if (names.count("") > 0 && names.size() > 1) {
    throw std::invalid_argument(
        "write_hdf5: a root split (empty name) cannot sit beside named ones");
  }
}

void fsync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw DatasetError(path, "cannot reopen to sync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw DatasetError(path, "fsync failed");
}

}  // namespace

void write_hdf5(const std::string& path, const std::vector<Hdf5Split>& splits,
                const Hdf5WriteOptions& options) {
  check_splits(splits);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  detail::QuietHdf5Errors quiet;
  try {
    Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                &H5Fclose);
    if (!file.ok()) throw DatasetError(path, "cannot create " + tmp);
    for (const auto& s : splits) {
      if (!s.name.empty()) {
        Handle group(H5Gcreate2(file.get(), s.name.c_str(), H5P_DEFAULT,
                                H5P_DEFAULT, H5P_DEFAULT),
                     &H5Gclose);
        if (!group.ok()) {
          throw DatasetError(path, "cannot create group \"" + s.name + "\"");
        }
      }
      write_split(file.get(), path, s);
    }
    write_attributes(file.get(), path, options);
    if (!file.close_now()) throw DatasetError(path, "cannot finish " + tmp);
    fsync_file(tmp);
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
      throw DatasetError(path, "cannot rename " + tmp + ": " + ec.message());
    }
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

void write_hdf5(const std::string& path, const ImageDataset& data,
                const Hdf5WriteOptions& options) {
  write_hdf5(path, std::vector<Hdf5Split>{{"", data}}, options);
}

}  // namespace dptrain::datasets
