#pragma once

// Small typed readers and writers over torch::serialize archives, shared by
// the checkpointable pieces of dp/. Readers throw std::runtime_error naming
// the missing or mistyped entry.

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/dp/batch_sampler.h"
#include "dptrain/dp/secure_random.h"

namespace dptrain::dp::detail {

void write_int(torch::serialize::OutputArchive& archive, const std::string& key,
               int64_t value);
void write_double(torch::serialize::OutputArchive& archive,
                  const std::string& key, double value);
void write_string(torch::serialize::OutputArchive& archive,
                  const std::string& key, const std::string& value);
void write_key(torch::serialize::OutputArchive& archive, const std::string& key,
               const ChaChaKey& value);

int64_t read_int(torch::serialize::InputArchive& archive,
                 const std::string& key);
double read_double(torch::serialize::InputArchive& archive,
                   const std::string& key);
std::string read_string(torch::serialize::InputArchive& archive,
                        const std::string& key);
ChaChaKey read_key(torch::serialize::InputArchive& archive,
                   const std::string& key);
at::Tensor read_tensor(torch::serialize::InputArchive& archive,
                       const std::string& key);

/// A sampler's key under its policy: "key_policy", and "key" only when
/// reproducible (privacy invariant 8).
void write_sampler_key(torch::serialize::OutputArchive& archive,
                       SamplerKey policy, const ChaChaKey& key);
/// The saved key of a reproducible sampler, or a fresh OS key of a secret
/// one; throws std::runtime_error when the saved policy is not `policy`.
ChaChaKey read_sampler_key(torch::serialize::InputArchive& archive,
                           SamplerKey policy);

/// Throws std::runtime_error("<what> checkpoint mismatch: <field> is <saved>
/// in the checkpoint, <current> here") when saved != current.
void expect_same(const std::string& what, const std::string& field,
                 const std::string& saved, const std::string& current);

}  // namespace dptrain::dp::detail
