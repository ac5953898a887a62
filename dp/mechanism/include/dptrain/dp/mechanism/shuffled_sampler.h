#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/dp/mechanism/batch_sampler.h"
#include "dptrain/dp/mechanism/secure_random.h"

namespace dptrain::dp {

/// The usual non-private loader, kept for comparison: each epoch is a fresh
/// random permutation cut into floor(N / batch_size) batches of exactly
/// batch_size examples (the remainder is dropped). This is NOT Poisson
/// sampling: the accountant's amplification-by-sampling guarantee does not
/// apply, and poisson() is false so the trainer says so.
class ShuffledFixedSizeSampler final : public BatchSampler {
 public:
  /// Throws std::invalid_argument if dataset_size <= 0 or batch_size is not
  /// in [1, dataset_size].
  /// Under SamplerKey::kSecret a resumed sampler draws a fresh key, so the
  /// rest of the interrupted epoch comes from a new permutation.
  ShuffledFixedSizeSampler(int64_t dataset_size, int64_t batch_size,
                           const ChaChaKey& key,
                           SamplerKey key_policy = SamplerKey::kSecret);

  std::vector<int64_t> next_batch() override;
  std::vector<int64_t> batch_at(int64_t step) const override;
  int64_t step() const override { return step_; }
  bool poisson() const override { return false; }
  std::string privacy_note() const override;
  std::string name() const override { return "shuffled_fixed_size"; }
  int64_t dataset_size() const override { return dataset_size_; }
  double sample_rate() const override {
    return static_cast<double>(batch_size_) /
           static_cast<double>(dataset_size_);
  }
  double expected_batch_size() const override {
    return static_cast<double>(batch_size_);
  }
  int64_t steps_per_epoch() const { return dataset_size_ / batch_size_; }
  SamplerKey key_policy() const override { return key_policy_; }
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  void replace_key(const ChaChaKey& key) override {
    key_ = key;
    cached_epoch_ = -1;  // the cached permutation came from the old key
  }

 private:
  const std::vector<int64_t>& permutation(int64_t epoch) const;

  int64_t dataset_size_;
  int64_t batch_size_;
  ChaChaKey key_;
  SamplerKey key_policy_;
  int64_t step_ = 0;
  // The permutation of one epoch, kept so each batch costs O(batch_size).
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_permutation_;
};

}  // namespace dptrain::dp
