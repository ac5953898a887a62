#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/dp/mechanism/batch_sampler.h"
#include "dptrain/dp/mechanism/secure_random.h"

namespace dptrain::dp {

/// Poisson sampling: at every step each of the N examples joins the batch
/// independently with probability q, so batch sizes follow Binomial(N, q) and
/// empty batches happen. Members are found by geometric skips (the gap to the
/// next member is Geometric(q), drawn as floor(log U / log(1 − q)) from a
/// 53-bit uniform U), which is exactly Poisson sampling up to the 2^-53
/// resolution of U and costs O(qN) per step, not O(N). The batch is then
/// shuffled so physical chunks are not ordered by index.
///
/// Step t draws from the ChaCha20 stream (key, t): the state is just the key
/// and the step counter. Under SamplerKey::kReproducible a resumed sampler
/// repeats the same batches; under kSecret (the default) the key never
/// leaves the process and a resumed sampler draws from a fresh one.
class PoissonSampler final : public BatchSampler {
 public:
  /// Throws std::invalid_argument if dataset_size <= 0 or sample_rate is not
  /// in (0, 1]. Key: key_from_seed(seed) for reproducible runs,
  /// os_entropy_key() otherwise.
  PoissonSampler(int64_t dataset_size, double sample_rate, const ChaChaKey& key,
                 SamplerKey key_policy = SamplerKey::kSecret);

  std::vector<int64_t> next_batch() override;
  std::vector<int64_t> batch_at(int64_t step) const override;
  int64_t step() const override { return step_; }
  bool poisson() const override { return true; }
  std::string privacy_note() const override { return {}; }
  std::string name() const override { return "poisson"; }
  int64_t dataset_size() const override { return dataset_size_; }
  double sample_rate() const override { return sample_rate_; }
  double expected_batch_size() const override {
    return sample_rate_ * static_cast<double>(dataset_size_);
  }
  SamplerKey key_policy() const override { return key_policy_; }
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  void replace_key(const ChaChaKey& key) override { key_ = key; }

 private:
  int64_t dataset_size_;
  double sample_rate_;
  ChaChaKey key_;
  SamplerKey key_policy_;
  int64_t step_ = 0;
};

}  // namespace dptrain::dp
