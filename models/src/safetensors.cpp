#include "dptrain/models/safetensors.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include "dptrain/models/griffin.h"

namespace dptrain::models {
namespace {

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  int64_t bytes;
};

constexpr DtypeInfo kDtypes[] = {
    {"F16", torch::kHalf, 2},
    {"BF16", torch::kBFloat16, 2},
    {"F32", torch::kFloat, 4},
    {"F64", torch::kDouble, 8},
};

bool host_is_little_endian() {
  const uint16_t one = 1;
  unsigned char first = 0;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

[[noreturn]] void fail(const std::string& source, const std::string& what) {
  throw std::invalid_argument("safetensors '" + source + "': " + what);
}

int64_t as_offset(const nlohmann::json& v, const std::string& source,
                  const std::string& name) {
  if (!v.is_number_unsigned()) {
    fail(source, "tensor '" + name +
                     "': data_offsets must be two non-negative integers, got " +
                     v.dump());
  }
  const auto x = v.get<uint64_t>();
  if (x > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    fail(source, "tensor '" + name + "': offset " + std::to_string(x) +
                     " is out of range");
  }
  return static_cast<int64_t>(x);
}

struct Entry {
  std::string name;
  DtypeInfo dtype;
  std::vector<int64_t> shape;
  int64_t begin = 0;
  int64_t end = 0;
};

}  // namespace

NamedTensors parse_safetensors(const std::string& bytes,
                               const std::string& source) {
  if (!host_is_little_endian()) {
    fail(source, "reading on a big-endian machine is not supported");
  }
  if (bytes.size() < 8) {
    fail(source, "truncated: " + std::to_string(bytes.size()) +
                     " bytes, shorter than the 8-byte header length");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) {
    header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
  }
  if (header_len > bytes.size() - 8) {
    fail(source, "truncated: the header length is " +
                     std::to_string(header_len) + " bytes but only " +
                     std::to_string(bytes.size() - 8) + " follow");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(
        bytes.begin() + 8,
        bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len));
  } catch (const nlohmann::json::exception& e) {
    fail(source, std::string("the header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(source, "the header is not a JSON object");
  const int64_t data_begin = 8 + static_cast<int64_t>(header_len);
  const int64_t data_size = static_cast<int64_t>(bytes.size()) - data_begin;

  std::vector<Entry> entries;
  for (const auto& [name, spec] : header.items()) {
    if (name == "__metadata__") {
      if (!spec.is_object()) fail(source, "__metadata__ is not a JSON object");
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!spec.is_object()) fail(source, where + " is not a JSON object");
    for (const char* key : {"dtype", "shape", "data_offsets"}) {
      if (!spec.contains(key)) fail(source, where + " has no " + key);
    }
    Entry e;
    e.name = name;
    const auto& dtype = spec.at("dtype");
    const std::string dtype_name =
        dtype.is_string() ? dtype.get<std::string>() : dtype.dump();
    const auto* info =
        std::find_if(std::begin(kDtypes), std::end(kDtypes),
                     [&](const DtypeInfo& d) { return dtype_name == d.name; });
    if (info == std::end(kDtypes)) {
      fail(source, where + ": unsupported dtype " + dtype_name +
                       " (supported: F16, BF16, F32, F64)");
    }
    e.dtype = *info;
    const auto& shape = spec.at("shape");
    if (!shape.is_array()) fail(source, where + ": shape is not an array");
    // Overflow-safe element count: every dimension and the running product
    // stay below the data size (or the count is 0).
    int64_t numel = 1;
    bool overflow = false;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) {
        fail(source, where + ": shape must hold non-negative integers, got " +
                         shape.dump());
      }
      const auto dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail(source,
             where + ": dimension " + std::to_string(dim) + " is out of range");
      }
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const auto dim : e.shape) {
      if (dim == 0) {
        numel = 0;
        overflow = false;
        break;
      }
      if (!overflow && numel > std::numeric_limits<int64_t>::max() / 8 / dim) {
        overflow = true;
      } else if (!overflow) {
        numel *= dim;
      }
    }
    const auto& offsets = spec.at("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2) {
      fail(source, where + ": data_offsets must be [begin, end], got " +
                       offsets.dump());
    }
    e.begin = as_offset(offsets[0], source, name);
    e.end = as_offset(offsets[1], source, name);
    if (e.begin > e.end) {
      fail(source, where + ": data_offsets begin " + std::to_string(e.begin) +
                       " > end " + std::to_string(e.end));
    }
    if (e.end > data_size) {
      fail(source, where + ": data_offsets [" + std::to_string(e.begin) + ", " +
                       std::to_string(e.end) + "] run past the data (" +
                       std::to_string(data_size) + " bytes; truncated file?)");
    }
    if (overflow || numel * e.dtype.bytes != e.end - e.begin) {
      fail(source,
           where + ": shape " + shape.dump() + " of " + dtype_name + " needs " +
               (overflow ? std::string("more")
                         : std::to_string(numel * e.dtype.bytes)) +
               " bytes, data_offsets span " + std::to_string(e.end - e.begin));
    }
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < entries.size(); ++i) {
    const auto& prev = entries[i - 1];
    const auto& cur = entries[i];
    // Empty tensors occupy no bytes and cannot overlap anything.
    if (cur.begin < prev.end && cur.end > cur.begin) {
      fail(source, "tensors '" + prev.name + "' [" +
                       std::to_string(prev.begin) + ", " +
                       std::to_string(prev.end) + ") and '" + cur.name + "' [" +
                       std::to_string(cur.begin) + ", " +
                       std::to_string(cur.end) + ") overlap");
    }
  }
  NamedTensors out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype.type));
    if (e.end > e.begin) {
      std::memcpy(t.data_ptr(), bytes.data() + data_begin + e.begin,
                  static_cast<size_t>(e.end - e.begin));
    }
    out.emplace_back(e.name, t);
  }
  return out;
}

NamedTensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot open safetensors file '" + path + "'");
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  if (in.bad())
    throw std::runtime_error("cannot read safetensors file '" + path + "'");
  return parse_safetensors(bytes, path);
}

std::string serialize_safetensors(const NamedTensors& tensors) {
  if (!host_is_little_endian()) {
    throw std::invalid_argument(
        "safetensors: writing on a big-endian machine is not supported");
  }
  nlohmann::json header = nlohmann::json::object();
  std::set<std::string> names;
  std::string data;
  std::vector<torch::Tensor> contiguous;
  for (const auto& [name, tensor] : tensors) {
    if (!names.insert(name).second) {
      throw std::invalid_argument("safetensors: duplicate tensor name '" +
                                  name + "'");
    }
    if (name == "__metadata__") {
      throw std::invalid_argument(
          "safetensors: '__metadata__' is not a tensor name");
    }
    const auto* info = std::find_if(
        std::begin(kDtypes), std::end(kDtypes),
        [&](const DtypeInfo& d) { return d.type == tensor.scalar_type(); });
    if (info == std::end(kDtypes)) {
      throw std::invalid_argument(
          "safetensors: tensor '" + name + "' has dtype " +
          std::string(c10::toString(tensor.scalar_type())) +
          "; supported: F16, BF16, F32, F64");
    }
    const auto t = tensor.detach().to(torch::kCPU).contiguous();
    const auto begin = static_cast<int64_t>(data.size());
    data.append(static_cast<const char*>(t.data_ptr()),
                static_cast<size_t>(t.numel() * info->bytes));
    header[name] = {
        {"dtype", info->name},
        {"shape", t.sizes().vec()},
        {"data_offsets", {begin, static_cast<int64_t>(data.size())}}};
  }
  std::string text = header.dump();
  // The format pads the header with spaces so the data starts 8-aligned.
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  std::string out(8, '\0');
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
  return out + text + data;
}

void write_safetensors(const std::string& path, const NamedTensors& tensors) {
  const auto bytes = serialize_safetensors(tensors);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    throw std::runtime_error("cannot create safetensors file '" + path + "'");
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out)
    throw std::runtime_error("cannot write safetensors file '" + path + "'");
}

void load_griffin_safetensors(GriffinImpl& model, const std::string& path) {
  const auto tensors = read_safetensors(path);
  try {
    load_published_parameters(model, tensors);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("'" + path + "': " + e.what());
  }
}

}  // namespace dptrain::models
