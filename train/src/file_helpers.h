// Private to train/src: small helpers more than one source file needs.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace dptrain::train::detail {

/// "<what> '<path>': <strerror(errno)>", for a failed system call.
inline std::runtime_error io_error(const std::string& what,
                                   const std::string& path) {
  return std::runtime_error(what + " '" + path + "': " + std::strerror(errno));
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace dptrain::train::detail
