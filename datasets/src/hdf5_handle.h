// Private: the names the HDF5 reader and writer use for dptrain::hdf5's RAII.
#pragma once

#include <string>

#include "dptrain/hdf5/handle.h"

namespace dptrain::datasets::detail {
using QuietHdf5Errors = hdf5::QuietErrors;
using Handle = hdf5::Handle;

/// The path of data set `name` in split `split` ("" = the file's root).
inline std::string join(const std::string& split, const std::string& name) {
  return split.empty() ? name : split + "/" + name;
}
}  // namespace dptrain::datasets::detail
