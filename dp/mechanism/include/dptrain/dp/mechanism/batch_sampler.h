#pragma once

// Which examples form each logical batch. The accountant's guarantee assumes
// Poisson sampling (PoissonSampler); any other sampler says so through
// poisson() and privacy_note() so the trainer can warn in the log and summary.

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/dp/archive/archive_fwd.h"
#include "dptrain/dp/mechanism/secure_random.h"

namespace dptrain::dp {

/// Whether a sampler's key may be written into checkpoints (privacy
/// invariant 8). Whoever holds the key recomputes every past batch, and
/// subsampling amplification is gone.
enum class SamplerKey {
  /// Secure runs: the key is never saved; load() draws a fresh key from the
  /// operating system. Poisson sampling is memoryless, so the batches after
  /// a resume have exactly the distribution of an uninterrupted run's.
  kSecret,
  /// Seeded runs: the key (which the seed gives away anyway) is saved, so a
  /// resumed run repeats an uninterrupted run's batches. Not for release.
  kReproducible,
};

/// "secret" or "reproducible" (stored in checkpoints).
std::string to_string(SamplerKey policy);

/// A stream of logical batches of example indices in [0, dataset_size).
class BatchSampler {
 public:
  virtual ~BatchSampler() = default;

  /// The batch of the current step, then advances the step. May be empty.
  virtual std::vector<int64_t> next_batch() = 0;

  /// The batch that step `step` (0-based) draws; does not move the sampler.
  virtual std::vector<int64_t> batch_at(int64_t step) const = 0;

  /// Steps drawn so far (the step next_batch() will draw).
  virtual int64_t step() const = 0;

  /// True only when every example joins each batch independently with
  /// probability sample_rate(): the sampling the accountant assumes.
  virtual bool poisson() const = 0;

  /// Empty for Poisson sampling; otherwise one sentence for logs and summaries
  /// saying the reported epsilon does not cover this sampler.
  virtual std::string privacy_note() const = 0;

  /// "poisson" or "shuffled_fixed_size"; stored in checkpoints.
  virtual std::string name() const = 0;

  virtual int64_t dataset_size() const = 0;

  /// q for Poisson; batch_size / dataset_size for fixed-size batches.
  virtual double sample_rate() const = 0;

  /// The public expected batch size q·N (fixed size: the batch size). Noise
  /// is divided by the configured constant, never by a realised batch size.
  virtual double expected_batch_size() const = 0;

  /// How the key is treated by save() and load().
  virtual SamplerKey key_policy() const = 0;

  /// Writes kind, configuration, key policy and step into `archive` (flat
  /// keys; nest it under a name of your choice), and the key only under
  /// SamplerKey::kReproducible.
  virtual void save(torch::serialize::OutputArchive& archive) const = 0;

  /// Restores what save() wrote; under SamplerKey::kSecret the key is drawn
  /// afresh from the OS. Throws std::runtime_error, changing nothing, when an
  /// entry is missing or kind, key policy, dataset_size or the rate differ.
  virtual void load(torch::serialize::InputArchive& archive) = 0;

  /// Draws from `key` from now on (the step counter is kept). A
  /// data-parallel run gives every rank rank 0's key, also after a resume
  /// under SamplerKey::kSecret has drawn a fresh one on each rank.
  virtual void replace_key(const ChaChaKey& key) = 0;
};

/// Splits a logical batch into consecutive physical chunks of at most
/// `max_physical_batch_size` indices (the last may be shorter). An empty batch
/// gives no chunks; the caller still adds noise for that step. Throws
/// std::invalid_argument if max_physical_batch_size <= 0.
std::vector<std::vector<int64_t>> split_into_chunks(
    const std::vector<int64_t>& batch, int64_t max_physical_batch_size);

}  // namespace dptrain::dp
