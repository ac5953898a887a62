#pragma once

// Archive entries that hold key material: the sampler key under its policy
// (privacy invariant 8: a secret key is never written).

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <string>

#include "dptrain/dp/mechanism/batch_sampler.h"
#include "dptrain/dp/mechanism/secure_random.h"

namespace dptrain::dp::detail {

void write_key(torch::serialize::OutputArchive& archive, const std::string& key,
               const ChaChaKey& value);
/// Throws std::runtime_error when the entry is missing or not a 256-bit key.
ChaChaKey read_key(torch::serialize::InputArchive& archive,
                   const std::string& key);

/// A sampler's key under its policy: "key_policy", and "key" only when
/// reproducible (privacy invariant 8).
void write_sampler_key(torch::serialize::OutputArchive& archive,
                       SamplerKey policy, const ChaChaKey& key);
/// The saved key of a reproducible sampler, or a fresh OS key of a secret
/// one; throws std::runtime_error when the saved policy is not `policy`.
ChaChaKey read_sampler_key(torch::serialize::InputArchive& archive,
                           SamplerKey policy);

}  // namespace dptrain::dp::detail
