#pragma once
/// Reading and writing the safetensors format (Hugging Face), in which the
/// public RecurrentGemma weights are distributed:
///
///   8 bytes   little-endian uint64 N, the header's length
///   N bytes   JSON object {name: {"dtype": "F32", "shape": [..],
///             "data_offsets": [begin, end]}, "__metadata__": {..}?}
///   rest      the data; a tensor's bytes are data[begin, end), row-major,
///             little-endian
///
/// Supported dtypes: F16, BF16, F32, F64. Everything in the file is checked
/// before any tensor is returned.

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace dptrain::models {

class GriffinImpl;

/// Tensors by name, in the order of their data offsets.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// Parses a safetensors image held in memory. `source` names it in errors
/// (e.g. the file path). Returns CPU tensors in their stored dtype.
/// Throws std::invalid_argument naming `source` (and the tensor, where one
/// is at fault) for: fewer than 8 bytes, a header length past the end, a
/// header that is not a JSON object, an entry without dtype / shape /
/// data_offsets, an unknown dtype, a negative dimension, begin > end, an end
/// past the data, overlapping byte ranges, or shape × dtype size ≠ end −
/// begin.
NamedTensors parse_safetensors(const std::string& bytes,
                               const std::string& source);

/// Reads and parses a file. Throws std::runtime_error naming the file if it
/// cannot be read, otherwise as parse_safetensors.
NamedTensors read_safetensors(const std::string& path);

/// The safetensors image of `tensors` (each F16, BF16, F32 or F64; stored
/// contiguous, in the given order). Throws std::invalid_argument naming a
/// tensor of another dtype or a duplicate name.
std::string serialize_safetensors(const NamedTensors& tensors);

/// Writes serialize_safetensors(tensors) to `path`. Throws
/// std::runtime_error naming the file on an I/O failure.
void write_safetensors(const std::string& path, const NamedTensors& tensors);

/// Loads a RecurrentGemma checkpoint in safetensors form (published
/// parameter names, any supported dtype, converted to the model's) into
/// `model` via load_published_parameters.
void load_griffin_safetensors(GriffinImpl& model, const std::string& path);

}  // namespace dptrain::models
