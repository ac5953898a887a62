#include "dptrain/dp/mechanism/secure_random.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace dptrain::dp {
namespace {

// RFC 8439 §2.3.2: key 00:01:..:1f, block count 1, nonce
// 00:00:00:09:00:00:00:4a:00:00:00:00. Input and output words as printed there.
constexpr ChaChaKey kRfcKey = {0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c,
                               0x13121110, 0x17161514, 0x1b1a1918, 0x1f1e1d1c};
constexpr ChaChaBlock kRfcOutput = {
    0xe4e7f110, 0x15593bd1, 0x1fdd0f50, 0xc47120a3, 0xc7f4d1c7, 0x0368c033,
    0x9aaa2204, 0x4e6cd4c3, 0x466482d2, 0x09aa9f07, 0x05d7c214, 0xa2028bd9,
    0xd19c12b5, 0xb94e16de, 0xe883d0cb, 0x4e3c50a2};

TEST(ChaCha20, BlockMatchesRfc8439Vector) {
  ChaChaBlock input = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
  for (int i = 0; i < 8; ++i) input[4 + i] = kRfcKey[i];
  input[12] = 0x00000001;
  input[13] = 0x09000000;
  input[14] = 0x4a000000;
  input[15] = 0x00000000;
  EXPECT_EQ(chacha20_block(input), kRfcOutput);
}

TEST(ChaChaStream, WordsAreTheBlockOutputInCounterMode) {
  // Our layout: 64-bit counter in words 12-13, stream id in words 14-15; the
  // RFC input above is counter 0x09000000'00000001, stream id 0x4a000000.
  ChaChaStream stream(kRfcKey, 0x4a000000ULL);
  stream.seek(0x0900000000000001ULL * ChaChaStream::kWordsPerBlock);
  for (int i = 0; i < 8; ++i) {
    const uint64_t expected =
        static_cast<uint64_t>(kRfcOutput[2 * i]) |
        (static_cast<uint64_t>(kRfcOutput[2 * i + 1]) << 32);
    EXPECT_EQ(stream.next_u64(), expected) << "word " << i;
  }
}

TEST(ChaChaStream, SeekReproducesAnyPosition) {
  ChaChaStream stream(key_from_seed(7), 3);
  std::vector<uint64_t> words;
  for (int i = 0; i < 37; ++i) words.push_back(stream.next_u64());
  EXPECT_EQ(stream.position(), 37U);
  for (uint64_t p : {0U, 5U, 8U, 16U, 29U}) {
    ChaChaStream other(key_from_seed(7), 3);
    other.seek(p);
    EXPECT_EQ(other.position(), p);
    EXPECT_EQ(other.next_u64(), words[p]) << "position " << p;
  }
}

TEST(ChaChaStream, StreamsAndKeysDiffer) {
  ChaChaStream a(key_from_seed(1), 0);
  ChaChaStream b(key_from_seed(1), 1);
  ChaChaStream c(key_from_seed(2), 0);
  ChaChaStream a2(key_from_seed(1), 0);
  const uint64_t wa = a.next_u64();
  EXPECT_NE(wa, b.next_u64());
  EXPECT_NE(wa, c.next_u64());
  EXPECT_EQ(wa, a2.next_u64());
}

TEST(ChaChaStream, NextBelowIsUniform) {
  // Chi-square goodness of fit, 5 degrees of freedom; 20.52 is the 0.999
  // quantile and 0.2102 the 0.001 quantile (two-sided, fixed key).
  ChaChaStream stream(key_from_seed(11), 0);
  constexpr int kDraws = 60000;
  std::array<int, 6> counts{};
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t v = stream.next_below(6);
    ASSERT_LT(v, 6U);
    ++counts[v];
  }
  double chi2 = 0;
  for (int c : counts)
    chi2 += (c - kDraws / 6.0) * (c - kDraws / 6.0) / (kDraws / 6.0);
  EXPECT_GT(chi2, 0.2102);
  EXPECT_LT(chi2, 20.52);
}

TEST(ChaChaStream, NextBelowRejectsZeroBound) {
  ChaChaStream stream(key_from_seed(0), 0);
  try {
    stream.next_below(0);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("bound must be > 0, got 0"),
              std::string::npos);
  }
}

TEST(ChaChaStream, UniformsStayInTheirIntervals) {
  ChaChaStream stream(key_from_seed(5), 0);
  double sum = 0;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    const double u = stream.next_uniform_open_closed();
    ASSERT_GT(u, 0.0);
    ASSERT_LE(u, 1.0);
    const double v = stream.next_uniform();
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 1.0);
    sum += v;
  }
  // Mean of U[0,1): sd of the average is sqrt(1/12/n) = 0.00204; 5 sd.
  EXPECT_NEAR(sum / kDraws, 0.5, 5 * 0.00204);
}

TEST(OsEntropy, KeysDifferBetweenCalls) {
  EXPECT_NE(os_entropy_key(), os_entropy_key());
}

TEST(KeyFromSeed, IsDeterministicAndSeedDependent) {
  EXPECT_EQ(key_from_seed(42), key_from_seed(42));
  EXPECT_NE(key_from_seed(42), key_from_seed(43));
}

}  // namespace
}  // namespace dptrain::dp
