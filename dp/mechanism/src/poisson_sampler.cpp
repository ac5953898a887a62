#include "dptrain/dp/mechanism/poisson_sampler.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

#include "dptrain/dp/archive/archive_io.h"
#include "key_archive.h"

namespace dptrain::dp {
PoissonSampler::PoissonSampler(int64_t dataset_size, double sample_rate,
                               const ChaChaKey& key, SamplerKey key_policy)
    : dataset_size_(dataset_size),
      sample_rate_(sample_rate),
      key_(key),
      key_policy_(key_policy) {
  if (dataset_size <= 0) {
    throw std::invalid_argument("dataset_size must be > 0, got " +
                                std::to_string(dataset_size));
  }
  // Written so that NaN fails too.
  if (!(sample_rate > 0.0 && sample_rate <= 1.0)) {
    throw std::invalid_argument("sample_rate must be in (0, 1], got " +
                                detail::exact_text(sample_rate));
  }
}

std::vector<int64_t> PoissonSampler::next_batch() {
  std::vector<int64_t> batch = batch_at(step_);
  ++step_;
  return batch;
}

std::vector<int64_t> PoissonSampler::batch_at(int64_t step) const {
  if (step < 0) {
    throw std::invalid_argument("step must be >= 0, got " +
                                std::to_string(step));
  }
  ChaChaStream stream(key_, static_cast<uint64_t>(step));
  std::vector<int64_t> batch;
  if (sample_rate_ == 1.0) {
    batch.resize(static_cast<std::size_t>(dataset_size_));
    std::iota(batch.begin(), batch.end(), int64_t{0});
  } else {
    const double mean = expected_batch_size();
    batch.reserve(static_cast<std::size_t>(std::min(
        static_cast<double>(dataset_size_), mean + 6 * std::sqrt(mean) + 16)));
    const double log_miss = std::log1p(-sample_rate_);  // < 0
    int64_t last = -1;  // index of the last member found
    for (;;) {
      // Members skipped before the next one: Geometric(q) on {0, 1, ...},
      // P(skip >= k) = P(U <= (1 − q)^k) = (1 − q)^k.
      const double skip =
          std::floor(std::log(stream.next_uniform_open_closed()) / log_miss);
      if (!(skip < static_cast<double>(dataset_size_ - 1 - last))) break;
      last += 1 + static_cast<int64_t>(skip);
      batch.push_back(last);
    }
  }
  // Fisher–Yates, so physical chunks are not ordered by index.
  for (std::size_t i = batch.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(stream.next_below(i));
    std::swap(batch[i - 1], batch[j]);
  }
  return batch;
}

void PoissonSampler::save(torch::serialize::OutputArchive& archive) const {
  detail::write_string(archive, "kind", name());
  detail::write_int(archive, "dataset_size", dataset_size_);
  detail::write_double(archive, "sample_rate", sample_rate_);
  detail::write_sampler_key(archive, key_policy_, key_);
  detail::write_int(archive, "step", step_);
}

void PoissonSampler::load(torch::serialize::InputArchive& archive) {
  const std::string kind = detail::read_string(archive, "kind");
  detail::expect_same("sampler", "kind", kind, name());
  const int64_t dataset_size = detail::read_int(archive, "dataset_size");
  const double sample_rate = detail::read_double(archive, "sample_rate");
  const int64_t step = detail::read_int(archive, "step");
  detail::expect_same("sampler", "dataset_size", std::to_string(dataset_size),
                      std::to_string(dataset_size_));
  detail::expect_same("sampler", "sample_rate", detail::exact_text(sample_rate),
                      detail::exact_text(sample_rate_));
  if (step < 0) {
    throw std::runtime_error("sampler checkpoint has a negative step: " +
                             std::to_string(step));
  }
  // Last: a secret policy draws a fresh key, so nothing may fail after it.
  key_ = detail::read_sampler_key(archive, key_policy_);
  step_ = step;
}

}  // namespace dptrain::dp
