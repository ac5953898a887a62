// Private: the names the weights and Griffin checkpoint readers and writers
// use for dptrain::hdf5's RAII.
#pragma once

#include "dptrain/hdf5/handle.h"

namespace dptrain::models::detail {
using QuietHdf5 = hdf5::QuietErrors;
using Handle = hdf5::Handle;
}  // namespace dptrain::models::detail
