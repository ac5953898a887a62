#include "key_archive.h"

#include <cstddef>
#include <stdexcept>
#include <vector>

#include "dptrain/dp/archive/archive_io.h"

namespace dptrain::dp::detail {

void write_key(torch::serialize::OutputArchive& archive, const std::string& key,
               const ChaChaKey& value) {
  write_int_list(archive, key,
                 std::vector<int64_t>(value.begin(), value.end()));
}

ChaChaKey read_key(torch::serialize::InputArchive& archive,
                   const std::string& key) {
  const std::vector<int64_t> words = read_int_list(archive, key);
  ChaChaKey result{};
  bool ok = words.size() == result.size();
  for (std::size_t i = 0; ok && i < result.size(); ++i) {
    ok = words[i] >= 0 && words[i] <= 0xffffffffLL;
    if (ok) result[i] = static_cast<uint32_t>(words[i]);
  }
  if (!ok) {
    throw std::runtime_error("checkpoint entry '" + key +
                             "' is not a 256-bit key");
  }
  return result;
}

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

}  // namespace dptrain::dp::detail
