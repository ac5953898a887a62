#include "dptrain/train/checkpoint.h"

#include "file_helpers.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace dptrain::train {
namespace {

constexpr char kMagic[8] = {'D', 'P', 'T', 'C', 'K', 'P', 'T', '\n'};
constexpr std::uint32_t kFormatVersion = 1;
// magic(8) + version(4) + payload length(8) + crc32(4)
constexpr std::size_t kHeaderSize = 24;

using detail::io_error;

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
std::uint64_t get_le(const std::string& in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i]))
         << (8 * i);
  }
  return v;
}

std::string directory_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::uint32_t crc32_of(const std::string& bytes) {
  return crc32_of(bytes.data(), bytes.size());
}

std::uint32_t crc32_of(const void* bytes, std::size_t size,
                       std::uint32_t start) {
  uLong crc = start;
  const auto* data = reinterpret_cast<const Bytef*>(bytes);
  std::size_t left = size;
  while (left > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(left, 1U << 30));
    crc = crc32(crc, data, chunk);
    data += chunk;
    left -= chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw io_error("cannot create", tmp);
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n =
        ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const auto err = io_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw err;
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const auto err = io_error("cannot flush", tmp);
    ::unlink(tmp.c_str());
    throw err;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const auto err = io_error("cannot rename to", path);
    ::unlink(tmp.c_str());
    throw err;
  }
  const int dir =
      ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void save_checkpoint(torch::serialize::OutputArchive& archive,
                     const std::string& path) {
  std::ostringstream payload_stream(std::ios::binary);
  archive.save_to(payload_stream);
  const std::string payload = payload_stream.str();
  std::string out(kMagic, sizeof(kMagic));
  put_u32(out, kFormatVersion);
  put_u64(out, payload.size());
  put_u32(out, crc32_of(payload));
  out += payload;
  write_file_atomically(path, out);
}

void load_checkpoint(const std::string& path,
                     torch::serialize::InputArchive& archive) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error("cannot open checkpoint", path);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (bytes.size() < kHeaderSize ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    throw std::runtime_error(
        "checkpoint '" + path +
        "' is not a dptrain checkpoint (bad magic or too short)");
  }
  const auto version = static_cast<std::uint32_t>(get_le(bytes, 8, 4));
  if (version != kFormatVersion) {
    throw std::runtime_error("checkpoint '" + path + "' has format version " +
                             std::to_string(version) +
                             ", this build reads version " +
                             std::to_string(kFormatVersion));
  }
  const std::uint64_t length = get_le(bytes, 12, 8);
  if (length != bytes.size() - kHeaderSize) {
    throw std::runtime_error(
        "checkpoint '" + path + "' is truncated or padded: header says " +
        std::to_string(length) + " payload bytes, file has " +
        std::to_string(bytes.size() - kHeaderSize));
  }
  const auto expected_crc = static_cast<std::uint32_t>(get_le(bytes, 20, 4));
  std::string payload = bytes.substr(kHeaderSize);
  if (crc32_of(payload) != expected_crc) {
    throw std::runtime_error("checkpoint '" + path +
                             "' is corrupted: checksum mismatch");
  }
  std::istringstream payload_stream(std::move(payload), std::ios::binary);
  archive.load_from(payload_stream);
}

}  // namespace dptrain::train
