#pragma once

// Small typed readers and writers over torch::serialize archives, shared by
// the checkpointable pieces of dp/ (mechanism/ and optim/). Readers throw
// std::runtime_error naming the missing or mistyped entry.

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::dp::detail {

void write_int(torch::serialize::OutputArchive& archive, const std::string& key,
               int64_t value);
void write_double(torch::serialize::OutputArchive& archive,
                  const std::string& key, double value);
void write_string(torch::serialize::OutputArchive& archive,
                  const std::string& key, const std::string& value);
void write_int_list(torch::serialize::OutputArchive& archive,
                    const std::string& key, const std::vector<int64_t>& value);

int64_t read_int(torch::serialize::InputArchive& archive,
                 const std::string& key);
double read_double(torch::serialize::InputArchive& archive,
                   const std::string& key);
std::string read_string(torch::serialize::InputArchive& archive,
                        const std::string& key);
std::vector<int64_t> read_int_list(torch::serialize::InputArchive& archive,
                                   const std::string& key);
at::Tensor read_tensor(torch::serialize::InputArchive& archive,
                       const std::string& key);

/// `value` as printf's %g, for error messages ("0.1", "1e-05").
std::string short_text(double value);
/// `value` as printf's %.17g: reads back to the same double, so two of them
/// compare equal exactly when the numbers do (checkpoint checks).
std::string exact_text(double value);

/// Throws std::runtime_error("<what> checkpoint mismatch: <field> is <saved>
/// in the checkpoint, <current> here") when saved != current.
void expect_same(const std::string& what, const std::string& field,
                 const std::string& saved, const std::string& current);

}  // namespace dptrain::dp::detail
