// Checkpoint files: a LibTorch archive wrapped in a header with a length and
// a CRC-32, written atomically (temporary file, flush, fsync, rename), so a
// crash at any moment leaves either the old file or the new one, never a mix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dptrain/dp/archive/archive_fwd.h"

namespace dptrain::train {

/// Writes `bytes` to `path` atomically: `path.tmp.<pid>` is written, flushed,
/// fsync'ed and renamed over `path`; the directory is fsync'ed too.
/// Throws std::runtime_error naming the path on any I/O failure (the old file,
/// if any, is then untouched).
void write_file_atomically(const std::string& path, const std::string& bytes);

/// Serialises `archive` into the checkpoint format (magic, version, payload
/// length, CRC-32 of the payload) and writes it atomically to `path`.
void save_checkpoint(torch::serialize::OutputArchive& archive,
                     const std::string& path);

/// Reads and verifies a checkpoint written by save_checkpoint and loads its
/// payload into `archive`. Throws std::runtime_error naming the file when it
/// is missing, truncated, not a dptrain checkpoint, of another version, or its
/// checksum does not match; nothing is loaded in that case.
void load_checkpoint(const std::string& path,
                     torch::serialize::InputArchive& archive);

/// CRC-32 (IEEE, as zlib) of a byte string; exposed for tests.
std::uint32_t crc32_of(const std::string& bytes);
/// The same of `size` bytes at `data`, continuing from `crc` (0 to start).
std::uint32_t crc32_of(const void* data, std::size_t size,
                       std::uint32_t crc = 0);

}  // namespace dptrain::train
