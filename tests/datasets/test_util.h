// Small assertions shared by the dataset tests.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "dptrain/datasets/errors.h"

namespace dptrain::datasets::testing {

/// The message of the exception of type E that `f` throws; records a test
/// failure and returns "" when it throws nothing (or something else).
template <typename E = DatasetError, typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception thrown";
  return "";
}

}  // namespace dptrain::datasets::testing
