// Torch-free parser of the CIFAR-10 / CIFAR-100 binary formats. The readers in
// cifar_reader.h and the libFuzzer target are built on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::datasets {

/// Which binary layout: CIFAR-10 records are <label><3072 pixels>; CIFAR-100
/// records are <coarse label><fine label><3072 pixels>.
enum class CifarVariant { kCifar10, kCifar100 };

/// Which CIFAR-100 label to use (ignored for CIFAR-10).
enum class CifarLabel { kFine, kCoarse };

inline constexpr std::int64_t kCifarChannels = 3;
inline constexpr std::int64_t kCifarHeight = 32;
inline constexpr std::int64_t kCifarWidth = 32;
inline constexpr std::size_t kCifarImageBytes = 3 * 32 * 32;

/// Number of classes for a variant and label choice: 10, 100 (fine), 20
/// (coarse).
std::int64_t cifar_num_classes(CifarVariant variant, CifarLabel label);

/// A parsed CIFAR file: labels already extracted and range-checked; images
/// still in the buffer given to parse_cifar (each record's pixels are
/// channel-major [3, 32, 32], i.e. already [C, H, W]).
struct CifarRecords {
  std::vector<std::int64_t> labels;
  const std::uint8_t* data = nullptr;  ///< start of the first record
  std::size_t record_bytes = 0;        ///< label bytes + kCifarImageBytes
  std::size_t label_bytes = 0;         ///< 1 (CIFAR-10) or 2 (CIFAR-100)
  std::size_t size() const { return labels.size(); }
  /// Pixels of record i, kCifarImageBytes long. Requires i < size().
  const std::uint8_t* image(std::size_t i) const {
    return data + i * record_bytes + label_bytes;
  }
};

/// Parses a CIFAR binary buffer of `size` bytes; `name` (normally the file
/// path) starts every error message. Throws DatasetError when the buffer is
/// empty, its size is not a whole number of records (truncated data), or a
/// label is out of range (>= cifar_num_classes). Never reads outside
/// [data, data + size).
CifarRecords parse_cifar(const std::uint8_t* data, std::size_t size,
                         const std::string& name, CifarVariant variant,
                         CifarLabel label = CifarLabel::kFine);

}  // namespace dptrain::datasets
