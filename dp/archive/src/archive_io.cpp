#include "dptrain/dp/archive/archive_io.h"

#include <torch/torch.h>

#include <cstdio>
#include <stdexcept>

namespace dptrain::dp::detail {
namespace {

c10::IValue read_value(torch::serialize::InputArchive& archive,
                       const std::string& key) {
  c10::IValue value;
  if (!archive.try_read(key, value)) {
    throw std::runtime_error("checkpoint has no entry '" + key + "'");
  }
  return value;
}

[[noreturn]] void wrong_type(const std::string& key, const char* expected) {
  throw std::runtime_error("checkpoint entry '" + key + "' is not " + expected);
}

std::string formatted(const char* spec, double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), spec, value);
  return buffer;
}

}  // namespace

std::string short_text(double value) { return formatted("%g", value); }
std::string exact_text(double value) { return formatted("%.17g", value); }

void write_int(torch::serialize::OutputArchive& archive, const std::string& key,
               int64_t value) {
  archive.write(key, c10::IValue(value));
}

void write_double(torch::serialize::OutputArchive& archive,
                  const std::string& key, double value) {
  archive.write(key, c10::IValue(value));
}

void write_string(torch::serialize::OutputArchive& archive,
                  const std::string& key, const std::string& value) {
  archive.write(key, c10::IValue(value));
}

void write_int_list(torch::serialize::OutputArchive& archive,
                    const std::string& key, const std::vector<int64_t>& value) {
  archive.write(key, c10::IValue(value));
}

int64_t read_int(torch::serialize::InputArchive& archive,
                 const std::string& key) {
  const c10::IValue value = read_value(archive, key);
  if (!value.isInt()) wrong_type(key, "an integer");
  return value.toInt();
}

double read_double(torch::serialize::InputArchive& archive,
                   const std::string& key) {
  const c10::IValue value = read_value(archive, key);
  if (!value.isDouble()) wrong_type(key, "a floating-point number");
  return value.toDouble();
}

std::string read_string(torch::serialize::InputArchive& archive,
                        const std::string& key) {
  const c10::IValue value = read_value(archive, key);
  if (!value.isString()) wrong_type(key, "a string");
  return value.toStringRef();
}

std::vector<int64_t> read_int_list(torch::serialize::InputArchive& archive,
                                   const std::string& key) {
  const c10::IValue value = read_value(archive, key);
  if (!value.isIntList()) wrong_type(key, "a list of integers");
  return value.toIntVector();
}

at::Tensor read_tensor(torch::serialize::InputArchive& archive,
                       const std::string& key) {
  at::Tensor tensor;
  if (!archive.try_read(key, tensor)) {
    throw std::runtime_error("checkpoint has no tensor '" + key + "'");
  }
  return tensor;
}

void expect_same(const std::string& what, const std::string& field,
                 const std::string& saved, const std::string& current) {
  if (saved != current) {
    throw std::runtime_error(what + " checkpoint mismatch: " + field + " is " +
                             saved + " in the checkpoint, " + current +
                             " here");
  }
}

}  // namespace dptrain::dp::detail
