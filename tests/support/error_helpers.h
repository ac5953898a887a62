// Assertions on error messages, shared by the test binaries: every error
// path is tested by the message it produces.
#pragma once

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace dptrain::test_support {

/// The message of the exception of type E that `f` throws. Records a test
/// failure and returns "" when `f` throws nothing or another exception type.
template <typename E = std::exception, typename F>
std::string error_of(F&& f) {
  if constexpr (std::is_same_v<E, std::exception>) {
    try {
      std::forward<F>(f)();
    } catch (const std::exception& e) {
      return e.what();
    }
  } else {
    try {
      std::forward<F>(f)();
    } catch (const E& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "unexpected exception type: " << e.what();
      return "";
    }
  }
  ADD_FAILURE() << "no exception thrown";
  return "";
}

/// Expects `f` to throw an E whose message contains `text`.
template <typename E = std::invalid_argument, typename F>
void expect_error(F&& f, const std::string& text) {
  const std::string what = error_of<E>(std::forward<F>(f));
  EXPECT_NE(what.find(text), std::string::npos)
      << "message was: " << what << "\nexpected it to contain: " << text;
}

}  // namespace dptrain::test_support
