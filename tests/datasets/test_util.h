// Small assertions shared by the dataset tests.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "dptrain/datasets/errors.h"
#include "error_helpers.h"

namespace dptrain::datasets::testing {

/// The message of the exception of type E that `f` throws; records a test
/// failure and returns "" when it throws nothing (or something else).
template <typename E = DatasetError, typename F>
std::string error_of(F&& f) {
  return test_support::error_of<E>(std::forward<F>(f));
}

}  // namespace dptrain::datasets::testing
