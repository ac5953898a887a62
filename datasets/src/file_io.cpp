#include "file_io.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "dptrain/datasets/errors.h"

namespace dptrain::datasets::detail {
namespace fs = std::filesystem;

namespace {
// zlib prefixes its messages with the path; ours already starts with it.
std::string zlib_message(gzFile f, const std::string& path, int* err) {
  std::string msg = gzerror(f, err);
  const std::string prefix = path + ": ";
  if (msg.compare(0, prefix.size(), prefix) == 0) msg.erase(0, prefix.size());
  return msg;
}
}  // namespace

bool is_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) {
    throw DatasetError(path, "no such file");
  }
  if (fs::is_directory(status)) {
    throw DatasetError(path, "is a folder, expected a file");
  }
  errno = 0;
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"),
                                               &gzclose);
  if (!f) {
    throw DatasetError(path, std::string("cannot open: ") +
                                 (errno ? std::strerror(errno) : "zlib error"));
  }
  gzbuffer(f.get(), 1 << 20);
  std::vector<std::uint8_t> out;
  // The first read asks for the file's size (+1, to see its end at once):
  // all of an uncompressed file, without zeroing megabytes for a small image.
  constexpr unsigned kChunk = 1u << 22;
  const auto on_disk = fs::file_size(path, ec);
  unsigned chunk =
      ec ? kChunk
         : static_cast<unsigned>(std::min<std::uintmax_t>(on_disk + 1, kChunk));
  for (;;) {
    const std::size_t old = out.size();
    out.resize(old + chunk);
    const unsigned asked = chunk;
    const int got = gzread(f.get(), out.data() + old, asked);
    chunk = kChunk;
    if (got < 0) {
      int err = 0;
      const std::string msg = zlib_message(f.get(), path, &err);
      throw DatasetError(path, "truncated or corrupt gzip data: " + msg);
    }
    out.resize(old + static_cast<std::size_t>(got));
    if (static_cast<unsigned>(got) < asked) break;  // the end (or gzeof)
  }
  int err = Z_OK;
  const std::string msg = zlib_message(f.get(), path, &err);
  if (err != Z_OK && err != Z_STREAM_END) {
    throw DatasetError(path,
                       std::string("truncated or corrupt gzip data: ") + msg);
  }
  out.shrink_to_fit();
  return out;
}

std::string find_file(const std::string& dir,
                      const std::vector<std::string>& candidates) {
  for (const auto& c : candidates) {
    const auto p = (fs::path(dir) / c).string();
    if (is_file(p)) return p;
  }
  std::string list;
  for (const auto& c : candidates) list += (list.empty() ? "" : ", ") + c;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw DatasetError(dir, "no such folder (looking for " + list + ")");
  }
  throw DatasetError(dir, "missing file: none of " + list);
}

}  // namespace dptrain::datasets::detail
