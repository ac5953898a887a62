#include "dptrain/datasets/idx_parser.h"

#include <cstdio>

#include "dptrain/datasets/errors.h"

namespace dptrain::datasets {
namespace {

std::uint32_t read_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(v));
  return buf;
}

bool known_type(std::uint8_t code) {
  switch (static_cast<IdxType>(code)) {
    case IdxType::kUint8:
    case IdxType::kInt8:
    case IdxType::kInt16:
    case IdxType::kInt32:
    case IdxType::kFloat32:
    case IdxType::kFloat64:
      return true;
  }
  return false;
}

std::string dims_string(const std::vector<std::uint64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

}  // namespace

std::size_t idx_element_size(IdxType type) {
  switch (type) {
    case IdxType::kUint8:
    case IdxType::kInt8:
      return 1;
    case IdxType::kInt16:
      return 2;
    case IdxType::kInt32:
    case IdxType::kFloat32:
      return 4;
    case IdxType::kFloat64:
      return 8;
  }
  return 0;
}

std::uint64_t IdxArray::num_elements() const {
  std::uint64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

IdxArray parse_idx(const std::uint8_t* data, std::size_t size,
                   const std::string& name) {
  if (data == nullptr && size != 0) {
    throw DatasetError(name, "null buffer");
  }
  if (size < 4) {
    throw DatasetError(name, "truncated IDX header: " + std::to_string(size) +
                                 " bytes, need at least 4");
  }
  const std::uint32_t magic = read_be32(data);
  const std::uint8_t type_code = data[2];
  const std::uint8_t rank = data[3];
  if (data[0] != 0 || data[1] != 0 || !known_type(type_code) || rank == 0) {
    throw DatasetError(
        name, "wrong magic " + hex32(magic) +
                  ", expected 0x0000TTDD (TT: type 08/09/0b/0c/0d/0e, DD: "
                  "number of dimensions >= 1); not an IDX file");
  }
  const std::size_t header_bytes = 4 + 4 * std::size_t{rank};
  if (size < header_bytes) {
    throw DatasetError(name, "truncated IDX header: " + std::to_string(size) +
                                 " bytes, the header of a " +
                                 std::to_string(rank) + "-D array needs " +
                                 std::to_string(header_bytes));
  }
  IdxArray out;
  out.type = static_cast<IdxType>(type_code);
  out.dims.reserve(rank);
  const std::uint64_t elem = idx_element_size(out.type);
  // Bound the running product so it can never overflow: every factor is
  // < 2^32 and the running product stays <= kMaxIdxPayloadBytes < 2^37.
  std::uint64_t bytes = elem;
  bool too_big = false;
  for (std::size_t i = 0; i < rank; ++i) {
    const std::uint64_t d = read_be32(data + 4 + 4 * i);
    out.dims.push_back(d);
    if (!too_big) {
      if (d != 0 && bytes > kMaxIdxPayloadBytes / d) {
        too_big = true;
      } else {
        bytes *= d;
      }
    }
  }
  if (too_big) {
    throw DatasetError(name, "header dimensions " + dims_string(out.dims) +
                                 " describe more than " +
                                 std::to_string(kMaxIdxPayloadBytes) +
                                 " bytes of data");
  }
  const std::size_t payload = size - header_bytes;
  if (bytes != payload) {
    throw DatasetError(
        name,
        std::string(bytes > payload ? "truncated data" : "trailing data") +
            ": header dimensions " + dims_string(out.dims) + " need " +
            std::to_string(bytes) + " bytes of data, the file has " +
            std::to_string(payload));
  }
  out.data = data + header_bytes;
  out.data_bytes = payload;
  return out;
}

}  // namespace dptrain::datasets
