#include "dptrain/dp/mechanism/shuffled_sampler.h"

#include <torch/torch.h>

#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

#include "dptrain/dp/archive/archive_io.h"
#include "key_archive.h"

namespace dptrain::dp {

ShuffledFixedSizeSampler::ShuffledFixedSizeSampler(int64_t dataset_size,
                                                   int64_t batch_size,
                                                   const ChaChaKey& key,
                                                   SamplerKey key_policy)
    : dataset_size_(dataset_size),
      batch_size_(batch_size),
      key_(key),
      key_policy_(key_policy) {
  if (dataset_size <= 0) {
    throw std::invalid_argument("dataset_size must be > 0, got " +
                                std::to_string(dataset_size));
  }
  if (batch_size < 1 || batch_size > dataset_size) {
    throw std::invalid_argument("batch_size must be in [1, dataset_size=" +
                                std::to_string(dataset_size) + "], got " +
                                std::to_string(batch_size));
  }
}

std::string ShuffledFixedSizeSampler::privacy_note() const {
  return "batches are shuffled fixed-size batches, not Poisson-sampled: the "
         "reported epsilon assumes Poisson sampling and does not cover this "
         "run";
}

const std::vector<int64_t>& ShuffledFixedSizeSampler::permutation(
    int64_t epoch) const {
  if (epoch != cached_epoch_) {
    cached_permutation_.resize(static_cast<std::size_t>(dataset_size_));
    std::iota(cached_permutation_.begin(), cached_permutation_.end(),
              int64_t{0});
    ChaChaStream stream(key_, static_cast<uint64_t>(epoch));
    for (std::size_t i = cached_permutation_.size(); i > 1; --i) {
      const auto j = static_cast<std::size_t>(stream.next_below(i));
      std::swap(cached_permutation_[i - 1], cached_permutation_[j]);
    }
    cached_epoch_ = epoch;
  }
  return cached_permutation_;
}

std::vector<int64_t> ShuffledFixedSizeSampler::batch_at(int64_t step) const {
  if (step < 0) {
    throw std::invalid_argument("step must be >= 0, got " +
                                std::to_string(step));
  }
  const std::vector<int64_t>& order = permutation(step / steps_per_epoch());
  const auto begin =
      static_cast<std::ptrdiff_t>((step % steps_per_epoch()) * batch_size_);
  return {order.begin() + begin, order.begin() + begin + batch_size_};
}

std::vector<int64_t> ShuffledFixedSizeSampler::next_batch() {
  std::vector<int64_t> batch = batch_at(step_);
  ++step_;
  return batch;
}

void ShuffledFixedSizeSampler::save(
    torch::serialize::OutputArchive& archive) const {
  detail::write_string(archive, "kind", name());
  detail::write_int(archive, "dataset_size", dataset_size_);
  detail::write_int(archive, "batch_size", batch_size_);
  detail::write_sampler_key(archive, key_policy_, key_);
  detail::write_int(archive, "step", step_);
}

void ShuffledFixedSizeSampler::load(torch::serialize::InputArchive& archive) {
  const std::string kind = detail::read_string(archive, "kind");
  detail::expect_same("sampler", "kind", kind, name());
  const int64_t dataset_size = detail::read_int(archive, "dataset_size");
  const int64_t batch_size = detail::read_int(archive, "batch_size");
  const int64_t step = detail::read_int(archive, "step");
  detail::expect_same("sampler", "dataset_size", std::to_string(dataset_size),
                      std::to_string(dataset_size_));
  detail::expect_same("sampler", "batch_size", std::to_string(batch_size),
                      std::to_string(batch_size_));
  if (step < 0) {
    throw std::runtime_error("sampler checkpoint has a negative step: " +
                             std::to_string(step));
  }
  // Last: a secret policy draws a fresh key, so nothing may fail after it.
  key_ = detail::read_sampler_key(archive, key_policy_);
  step_ = step;
  cached_epoch_ = -1;
}

}  // namespace dptrain::dp
