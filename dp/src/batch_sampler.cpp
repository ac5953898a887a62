#include "dptrain/dp/batch_sampler.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "archive_io.h"

namespace dptrain::dp {

std::string to_string(SamplerKey policy) {
  return policy == SamplerKey::kSecret ? "secret" : "reproducible";
}

namespace detail {

void write_sampler_key(torch::serialize::OutputArchive& archive,
                       SamplerKey policy, const ChaChaKey& key) {
  write_string(archive, "key_policy", to_string(policy));
  if (policy == SamplerKey::kReproducible) write_key(archive, "key", key);
}

ChaChaKey read_sampler_key(torch::serialize::InputArchive& archive,
                           SamplerKey policy) {
  expect_same("sampler", "key_policy", read_string(archive, "key_policy"),
              to_string(policy));
  if (policy == SamplerKey::kReproducible) return read_key(archive, "key");
  return os_entropy_key();
}

}  // namespace detail

std::vector<std::vector<int64_t>> split_into_chunks(
    const std::vector<int64_t>& batch, int64_t max_physical_batch_size) {
  if (max_physical_batch_size <= 0) {
    throw std::invalid_argument("max_physical_batch_size must be > 0, got " +
                                std::to_string(max_physical_batch_size));
  }
  std::vector<std::vector<int64_t>> chunks;
  const auto size = static_cast<int64_t>(batch.size());
  chunks.reserve(static_cast<std::size_t>((size + max_physical_batch_size - 1) /
                                          max_physical_batch_size));
  for (int64_t begin = 0; begin < size; begin += max_physical_batch_size) {
    const int64_t end = std::min(size, begin + max_physical_batch_size);
    chunks.emplace_back(batch.begin() + begin, batch.begin() + end);
  }
  return chunks;
}

}  // namespace dptrain::dp
