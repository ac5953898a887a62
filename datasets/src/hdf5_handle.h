// Private: the names the HDF5 reader and writer use for dptrain::hdf5's RAII.
#pragma once

#include "dptrain/hdf5/handle.h"

namespace dptrain::datasets::detail {
using QuietHdf5Errors = hdf5::QuietErrors;
using Handle = hdf5::Handle;
}  // namespace dptrain::datasets::detail
