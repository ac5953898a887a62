// Private to models/src: the error that option checks of the diffusion code
// throw for a bad number.
#pragma once

#include <stdexcept>
#include <string>

namespace dptrain::models::detail {

/// Throws std::invalid_argument("<what>, got <value>").
[[noreturn]] inline void bad_value(const std::string& what, double value) {
  throw std::invalid_argument(what + ", got " + std::to_string(value));
}

}  // namespace dptrain::models::detail
