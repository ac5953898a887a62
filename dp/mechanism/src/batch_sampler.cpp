#include "dptrain/dp/mechanism/batch_sampler.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dptrain::dp {

std::string to_string(SamplerKey policy) {
  return policy == SamplerKey::kSecret ? "secret" : "reproducible";
}

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
