#include "dptrain/dp/mechanism/poisson_sampler.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <boost/math/distributions/chi_squared.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "archive_helpers.h"
#include "dptrain/dp/mechanism/batch_sampler.h"
#include "dptrain/dp/mechanism/shuffled_sampler.h"
#include "error_helpers.h"

namespace dptrain::dp {
namespace {

using dptrain::test_support::error_of;
using dptrain::test_support::round_trip;

TEST(PoissonSampler, BatchSizeMeanAndVarianceMatchBinomial) {
  constexpr int64_t kN = 1000;
  constexpr double kQ = 0.05;
  constexpr int kSteps = 4000;
  PoissonSampler sampler(kN, kQ, key_from_seed(1));
  double sum = 0;
  double sum_sq = 0;
  for (int t = 0; t < kSteps; ++t) {
    const auto size = static_cast<double>(sampler.next_batch().size());
    sum += size;
    sum_sq += size * size;
  }
  const double mean = sum / kSteps;
  const double variance = (sum_sq - kSteps * mean * mean) / (kSteps - 1);
  // Binomial(1000, 0.05): mean 50, variance 47.5.
  const double binomial_variance = kN * kQ * (1 - kQ);
  const double mean_se = std::sqrt(binomial_variance / kSteps);
  EXPECT_NEAR(mean, kN * kQ, 4 * mean_se);
  // (n−1)s²/σ² ~ χ²(n−1) for near-normal data: two-sided 0.1% bounds.
  boost::math::chi_squared chi2(kSteps - 1);
  const double statistic = (kSteps - 1) * variance / binomial_variance;
  EXPECT_GT(statistic, boost::math::quantile(chi2, 0.0005));
  EXPECT_LT(statistic, boost::math::quantile(chi2, 0.9995));
  // The same test rejects rates 2/3 q and 3/2 q.
  for (double wrong : {kQ * 2 / 3, kQ * 3 / 2}) {
    EXPECT_GT(std::abs(mean - kN * wrong), 4 * mean_se) << wrong;
  }
}

TEST(PoissonSampler, EveryExampleJoinsIndependentlyWithRateQ) {
  constexpr int64_t kN = 200;
  constexpr double kQ = 0.3;
  constexpr int kSteps = 3000;
  PoissonSampler sampler(kN, kQ, key_from_seed(2));
  std::vector<int> count(kN, 0);
  int both = 0;  // steps where examples 0 and 1 are both in the batch
  for (int t = 0; t < kSteps; ++t) {
    bool has0 = false;
    bool has1 = false;
    for (int64_t i : sampler.next_batch()) {
      ++count[static_cast<std::size_t>(i)];
      has0 = has0 || i == 0;
      has1 = has1 || i == 1;
    }
    both += has0 && has1 ? 1 : 0;
  }
  // Each count ~ Binomial(3000, 0.3), independent across examples.
  const double expected = kSteps * kQ;
  const double variance = kSteps * kQ * (1 - kQ);
  double statistic = 0;
  for (int c : count) {
    EXPECT_LT(std::abs(c - expected), 5 * std::sqrt(variance));
    statistic += (c - expected) * (c - expected) / variance;
  }
  boost::math::chi_squared chi2(kN);
  EXPECT_GT(statistic, boost::math::quantile(chi2, 0.0005));
  EXPECT_LT(statistic, boost::math::quantile(chi2, 0.9995));
  // Independence: P(0 and 1 both in) = q².
  const double p_both = kQ * kQ;
  EXPECT_NEAR(both, kSteps * p_both,
              4 * std::sqrt(kSteps * p_both * (1 - p_both)));
}

TEST(PoissonSampler, BatchesHoldDistinctIndicesInRange) {
  PoissonSampler sampler(50, 0.4, key_from_seed(3));
  for (int t = 0; t < 100; ++t) {
    const std::vector<int64_t> batch = sampler.next_batch();
    const std::set<int64_t> distinct(batch.begin(), batch.end());
    EXPECT_EQ(distinct.size(), batch.size());
    for (int64_t i : batch) {
      EXPECT_GE(i, 0);
      EXPECT_LT(i, 50);
    }
  }
}

TEST(PoissonSampler, EmptyBatchesAreLegal) {
  // P(empty) = (1 − 0.02)^5 = 0.90392.
  PoissonSampler sampler(5, 0.02, key_from_seed(4));
  constexpr int kSteps = 2000;
  int empty = 0;
  for (int t = 0; t < kSteps; ++t) empty += sampler.next_batch().empty();
  const double p = std::pow(0.98, 5);
  EXPECT_NEAR(empty, kSteps * p, 4.5 * std::sqrt(kSteps * p * (1 - p)));
}

TEST(PoissonSampler, RateOneTakesEveryExample) {
  PoissonSampler sampler(17, 1.0, key_from_seed(5));
  std::vector<int64_t> batch = sampler.next_batch();
  std::sort(batch.begin(), batch.end());
  std::vector<int64_t> all(17);
  std::iota(all.begin(), all.end(), int64_t{0});
  EXPECT_EQ(batch, all);
}

TEST(PoissonSampler, LargeDatasetCostsOnlyTheBatch) {
  // N = 4e9, q = 1e-7: about 400 members per step; an O(N) sampler would
  // take seconds per batch.
  PoissonSampler sampler(4'000'000'000LL, 1e-7, key_from_seed(6));
  const auto start = std::chrono::steady_clock::now();
  double total = 0;
  for (int t = 0; t < 50; ++t) {
    for (int64_t i : sampler.next_batch()) {
      ASSERT_GE(i, 0);
      ASSERT_LT(i, 4'000'000'000LL);
      total += 1;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_LT(seconds, 0.2);
  EXPECT_NEAR(total / 50, 400, 4 * std::sqrt(400.0 / 50));
}

TEST(PoissonSampler, SameSeedSameBatchesOtherSeedOthers) {
  PoissonSampler a(300, 0.1, key_from_seed(7));
  PoissonSampler b(300, 0.1, key_from_seed(7));
  PoissonSampler c(300, 0.1, key_from_seed(8));
  bool any_differs = false;
  for (int t = 0; t < 10; ++t) {
    const auto batch = a.next_batch();
    EXPECT_EQ(batch, b.next_batch());
    any_differs = any_differs || batch != c.next_batch();
  }
  EXPECT_TRUE(any_differs);
  EXPECT_EQ(a.step(), 10);
  EXPECT_EQ(a.batch_at(3), b.batch_at(3));
}

TEST(PoissonSampler, StateRoundTripResumesTheSameBatches) {
  PoissonSampler original(500, 0.05, key_from_seed(9),
                          SamplerKey::kReproducible);
  for (int t = 0; t < 7; ++t) original.next_batch();
  PoissonSampler resumed(500, 0.05, key_from_seed(1234),
                         SamplerKey::kReproducible);
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) { resumed.load(in); });
  EXPECT_EQ(resumed.step(), 7);
  for (int t = 0; t < 5; ++t)
    EXPECT_EQ(resumed.next_batch(), original.next_batch());
}

// The serialised archive of `sampler`, as it would sit in a checkpoint file.
std::string archive_bytes(const BatchSampler& sampler) {
  torch::serialize::OutputArchive out;
  sampler.save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  return bytes.str();
}

// True when the 32 key bytes (little-endian words, as in memory) appear in
// `bytes` — in any alignment — or as the 64 hex digits of either byte order.
bool holds_key(const std::string& bytes, const ChaChaKey& key) {
  std::string raw(reinterpret_cast<const char*>(key.data()), sizeof(key));
  std::string half(raw.substr(0, 16));  // half a key is already too much
  std::ostringstream hex_words;
  for (uint32_t w : key) {
    char buf[9];
    std::snprintf(buf, sizeof(buf), "%08x", w);
    hex_words << buf;
  }
  std::ostringstream hex_bytes;
  for (unsigned char c : raw) {
    char buf[3];
    std::snprintf(buf, sizeof(buf), "%02x", c);
    hex_bytes << buf;
  }
  for (const std::string& needle :
       {raw, half, hex_words.str(), hex_bytes.str()}) {
    if (bytes.find(needle) != std::string::npos) return true;
  }
  // Each word on its own, e.g. as separate int64 entries.
  int words_found = 0;
  for (uint32_t w : key) {
    const std::string word(reinterpret_cast<const char*>(&w), sizeof(w));
    words_found += bytes.find(word) != std::string::npos;
  }
  return words_found >= 4;
}

TEST(SamplerKey, SecretSamplersWriteNoKeyMaterial) {
  // Privacy invariant 8: whoever holds a key recomputes every past batch.
  const ChaChaKey key = os_entropy_key();
  PoissonSampler poisson(500, 0.05, key);  // kSecret is the default
  ShuffledFixedSizeSampler shuffled(40, 6, key);
  for (int t = 0; t < 3; ++t) {
    poisson.next_batch();
    shuffled.next_batch();
  }
  for (const BatchSampler* s :
       std::vector<const BatchSampler*>{&poisson, &shuffled}) {
    EXPECT_EQ(s->key_policy(), SamplerKey::kSecret);
    EXPECT_FALSE(holds_key(archive_bytes(*s), key)) << s->name();
    round_trip([&](auto& out) { s->save(out); },
               [&](auto& in) {
                 for (const auto& k : in.keys())
                   EXPECT_NE(k, "key") << s->name();
               });
  }
  // The scan itself finds a key where one is written.
  PoissonSampler reproducible(500, 0.05, key, SamplerKey::kReproducible);
  EXPECT_TRUE(holds_key(archive_bytes(reproducible), key));
}

TEST(SamplerKey, SecretSamplerResumesAtTheStepWithAFreshKey) {
  PoissonSampler original(2000, 0.05, os_entropy_key());
  for (int t = 0; t < 4; ++t) original.next_batch();
  PoissonSampler resumed(2000, 0.05, os_entropy_key());
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) { resumed.load(in); });
  EXPECT_EQ(resumed.step(), 4);
  bool any_differs = false;
  for (int t = 0; t < 5; ++t)
    any_differs |= resumed.next_batch() != original.next_batch();
  EXPECT_TRUE(any_differs);
}

TEST(SamplerKey, LoadRefusesTheOtherPolicy) {
  PoissonSampler secret(500, 0.05, key_from_seed(9));
  PoissonSampler reproducible(500, 0.05, key_from_seed(9),
                              SamplerKey::kReproducible);
  EXPECT_EQ(error_of([&] {
              round_trip([&](auto& out) { secret.save(out); },
                         [&](auto& in) { reproducible.load(in); });
            }),
            "sampler checkpoint mismatch: key_policy is secret in the "
            "checkpoint, reproducible here");
}

TEST(PoissonSampler, LoadRefusesAnotherConfiguration) {
  PoissonSampler saved(500, 0.05, key_from_seed(9));
  saved.next_batch();
  PoissonSampler other_size(501, 0.05, key_from_seed(9));
  EXPECT_EQ(error_of([&] {
              round_trip([&](auto& out) { saved.save(out); },
                         [&](auto& in) { other_size.load(in); });
            }),
            "sampler checkpoint mismatch: dataset_size is 500 in the "
            "checkpoint, 501 here");
  EXPECT_EQ(other_size.step(), 0);
  PoissonSampler other_rate(500, 0.06, key_from_seed(9));
  EXPECT_NE(error_of([&] {
              round_trip([&](auto& out) { saved.save(out); },
                         [&](auto& in) { other_rate.load(in); });
            }).find("sampler checkpoint mismatch: sample_rate is 0.05"),
            std::string::npos);
  ShuffledFixedSizeSampler shuffled(500, 25, key_from_seed(9));
  EXPECT_NE(
      error_of([&] {
        round_trip([&](auto& out) { saved.save(out); },
                   [&](auto& in) { shuffled.load(in); });
      }).find("kind is poisson in the checkpoint, shuffled_fixed_size here"),
      std::string::npos);
  PoissonSampler empty_target(500, 0.05, key_from_seed(9));
  EXPECT_EQ(error_of([&] {
              round_trip([](auto&) {},
                         [&](auto& in) { empty_target.load(in); });
            }),
            "checkpoint has no entry 'kind'");
}

TEST(PoissonSampler, RejectsRateOutsideZeroOne) {
  EXPECT_EQ(error_of([] { PoissonSampler(10, 0.0, key_from_seed(0)); }),
            "sample_rate must be in (0, 1], got 0");
  EXPECT_EQ(error_of([] { PoissonSampler(10, 1.5, key_from_seed(0)); }),
            "sample_rate must be in (0, 1], got 1.5");
  EXPECT_EQ(error_of([] { PoissonSampler(10, -0.25, key_from_seed(0)); }),
            "sample_rate must be in (0, 1], got -0.25");
  EXPECT_EQ(
      error_of([] { PoissonSampler(10, std::nan(""), key_from_seed(0)); }),
      "sample_rate must be in (0, 1], got nan");
}

TEST(PoissonSampler, RejectsNonPositiveDatasetSize) {
  EXPECT_EQ(error_of([] { PoissonSampler(0, 0.5, key_from_seed(0)); }),
            "dataset_size must be > 0, got 0");
  EXPECT_EQ(error_of([] { PoissonSampler(-3, 0.5, key_from_seed(0)); }),
            "dataset_size must be > 0, got -3");
}

TEST(PoissonSampler, SaysItIsPoisson) {
  PoissonSampler sampler(1000, 0.256, key_from_seed(0));
  EXPECT_TRUE(sampler.poisson());
  EXPECT_TRUE(sampler.privacy_note().empty());
  EXPECT_DOUBLE_EQ(sampler.expected_batch_size(), 256.0);
  EXPECT_EQ(error_of([&] { sampler.batch_at(-1); }),
            "step must be >= 0, got -1");
}

TEST(SplitIntoChunks, CutsConsecutiveChunksOfAtMostTheLimit) {
  const std::vector<int64_t> batch = {9, 4, 7, 1, 0, 3, 8};
  const auto chunks = split_into_chunks(batch, 3);
  ASSERT_EQ(chunks.size(), 3U);
  EXPECT_EQ(chunks[0], (std::vector<int64_t>{9, 4, 7}));
  EXPECT_EQ(chunks[1], (std::vector<int64_t>{1, 0, 3}));
  EXPECT_EQ(chunks[2], (std::vector<int64_t>{8}));
  EXPECT_EQ(split_into_chunks(batch, 7).size(), 1U);
  EXPECT_EQ(split_into_chunks(batch, 100).at(0), batch);
}

TEST(SplitIntoChunks, EmptyBatchGivesNoChunks) {
  EXPECT_TRUE(split_into_chunks({}, 4).empty());
}

TEST(SplitIntoChunks, RejectsNonPositiveLimit) {
  EXPECT_EQ(error_of([] {
              split_into_chunks({1, 2}, 0);
            }),
            "max_physical_batch_size must be > 0, got 0");
}

TEST(ShuffledFixedSizeSampler, EachEpochIsAPermutationCutIntoFixedBatches) {
  ShuffledFixedSizeSampler sampler(10, 3, key_from_seed(1));
  EXPECT_EQ(sampler.steps_per_epoch(), 3);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::set<int64_t> seen;
    for (int b = 0; b < 3; ++b) {
      const auto batch = sampler.next_batch();
      EXPECT_EQ(batch.size(), 3U);
      seen.insert(batch.begin(), batch.end());
    }
    EXPECT_EQ(seen.size(), 9U);  // distinct; one example dropped
  }
  EXPECT_NE(sampler.batch_at(0), sampler.batch_at(3));  // reshuffled
}

TEST(ShuffledFixedSizeSampler, SaysTheAccountantDoesNotCoverIt) {
  ShuffledFixedSizeSampler sampler(100, 10, key_from_seed(1));
  EXPECT_FALSE(sampler.poisson());
  EXPECT_NE(sampler.privacy_note().find("assumes Poisson sampling"),
            std::string::npos);
  EXPECT_DOUBLE_EQ(sampler.sample_rate(), 0.1);
}

TEST(ShuffledFixedSizeSampler, StateRoundTripResumes) {
  ShuffledFixedSizeSampler original(40, 6, key_from_seed(2),
                                    SamplerKey::kReproducible);
  for (int t = 0; t < 9; ++t) original.next_batch();
  ShuffledFixedSizeSampler resumed(40, 6, key_from_seed(3),
                                   SamplerKey::kReproducible);
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) { resumed.load(in); });
  for (int t = 0; t < 8; ++t)
    EXPECT_EQ(resumed.next_batch(), original.next_batch());
}

TEST(ShuffledFixedSizeSampler, RejectsBatchLargerThanDataset) {
  EXPECT_EQ(
      error_of([] { ShuffledFixedSizeSampler(10, 11, key_from_seed(0)); }),
      "batch_size must be in [1, dataset_size=10], got 11");
  EXPECT_EQ(error_of([] { ShuffledFixedSizeSampler(10, 0, key_from_seed(0)); }),
            "batch_size must be in [1, dataset_size=10], got 0");
  EXPECT_EQ(error_of([] { ShuffledFixedSizeSampler(0, 1, key_from_seed(0)); }),
            "dataset_size must be > 0, got 0");
}

}  // namespace
}  // namespace dptrain::dp
