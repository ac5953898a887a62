// Torch-free parser of the IDX format (MNIST, Fashion-MNIST): validates the
// header against the buffer and points into it. The file readers in
// idx_reader.h and the libFuzzer target are built on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::datasets {

/// Element type codes of the IDX format (third byte of the magic number).
enum class IdxType : std::uint8_t {
  kUint8 = 0x08,
  kInt8 = 0x09,
  kInt16 = 0x0B,
  kInt32 = 0x0C,
  kFloat32 = 0x0D,
  kFloat64 = 0x0E,
};

/// Bytes per element of `type`.
std::size_t idx_element_size(IdxType type);

/// A parsed IDX array: its header and a view of its payload inside the
/// buffer given to parse_idx (valid as long as that buffer is). Multi-byte
/// elements are big-endian, as stored.
struct IdxArray {
  IdxType type = IdxType::kUint8;
  std::vector<std::uint64_t> dims;  ///< outermost first, e.g. {N, H, W}
  const std::uint8_t* data = nullptr;
  std::size_t data_bytes = 0;  ///< = product(dims) * idx_element_size(type)
  std::uint64_t num_elements() const;
};

/// Largest payload parse_idx accepts (64 GiB): a bound on header products
/// long before any size_t arithmetic could overflow.
inline constexpr std::uint64_t kMaxIdxPayloadBytes = std::uint64_t{1} << 36;

/// Parses an IDX buffer of `size` bytes. `name` (normally the file path)
/// starts every error message. Throws DatasetError on: a buffer shorter than
/// its header, a magic number whose first two bytes are not zero, an unknown
/// type code, zero dimensions, a payload over kMaxIdxPayloadBytes, or a
/// payload size different from what the header dimensions say (truncated or
/// trailing data). Never reads outside [data, data + size).
IdxArray parse_idx(const std::uint8_t* data, std::size_t size,
                   const std::string& name);

}  // namespace dptrain::datasets
