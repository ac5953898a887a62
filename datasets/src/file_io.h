// Private: whole-file reads for the readers (gzip-transparent).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::datasets::detail {

/// The bytes of `path`, decompressed when it is gzip (zlib's gzread passes
/// other files through unchanged). Throws DatasetError naming the path when
/// the file is missing, is a folder, cannot be read, or is a truncated or
/// corrupt gzip stream.
std::vector<std::uint8_t> read_file(const std::string& path);

/// True when `path` names an existing regular file.
bool is_file(const std::string& path);

/// The first of `candidates` (names inside `dir`) that exists, or throws
/// DatasetError naming `dir` and every candidate.
std::string find_file(const std::string& dir,
                      const std::vector<std::string>& candidates);

}  // namespace dptrain::datasets::detail
