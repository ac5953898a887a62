// RAII for the HDF5 C API, shared by the weights and Griffin checkpoint
// readers and writers. Private to models/src. datasets/src/hdf5_reader.cpp
// has its own copy: the layering rule keeps models and datasets from
// including each other, and no folder both may use holds HDF5 code.
#pragma once

#include <hdf5.h>

namespace dptrain::models::detail {

/// Silences HDF5's automatic error printing for one scope (we report errors
/// as exceptions instead).
class QuietHdf5 {
 public:
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietHdf5(const QuietHdf5&) = delete;
  QuietHdf5& operator=(const QuietHdf5&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

/// Owns an HDF5 id and closes it with the matching function (nothing to
/// close when the id is negative, i.e. the call that made it failed).
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

}  // namespace dptrain::models::detail
