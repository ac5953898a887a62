// RAII for the HDF5 C API, shared by the readers and writers of datasets/
// (image sets, synthetic data) and models/ (weights, Griffin checkpoints).
// Header only; no other dptrain folder is included, so both may use it.
#pragma once

#include <hdf5.h>

namespace dptrain::hdf5 {

/// Turns HDF5's automatic error-stack printing off for one scope: callers
/// report each failure as an exception naming the file instead of a page on
/// stderr.
class QuietErrors {
 public:
  QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

/// Owns one HDF5 identifier and closes it with the matching function
/// (nothing to close when the id is negative: the call that made it failed).
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) {
    other.id_ = -1;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  /// Closes now; false when HDF5 reports a failure (a write that could not
  /// be flushed).
  bool close_now() {
    const hid_t id = id_;
    id_ = -1;
    return id < 0 || close_(id) >= 0;
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

}  // namespace dptrain::hdf5
