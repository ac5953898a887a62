#pragma once

// Random bits for everything private in a run: the batch sampler and the
// Gaussian noise. One primitive, ChaCha20 in counter mode, keyed either from
// the operating system (secure runs) or from a 64-bit seed (reproducible runs).

#include <array>
#include <cstddef>
#include <cstdint>

namespace dptrain::dp {

/// A 256-bit ChaCha20 key as eight 32-bit words (RFC 8439 §2.3 layout).
using ChaChaKey = std::array<uint32_t, 8>;

/// One ChaCha20 state or output block: sixteen 32-bit words.
using ChaChaBlock = std::array<uint32_t, 16>;

/// Fills `size` bytes at `out` from the operating system's cryptographically
/// secure generator: getrandom(2), else /dev/urandom. Throws
/// std::runtime_error naming the source if neither can deliver.
void fill_os_entropy(void* out, std::size_t size);

/// A fresh key read with fill_os_entropy.
ChaChaKey os_entropy_key();

/// A key expanded from a 64-bit seed (SplitMix64). For reproducible runs only:
/// whoever knows the seed knows every bit drawn from the key.
ChaChaKey key_from_seed(uint64_t seed);

/// The ChaCha20 block function of RFC 8439 §2.3: 20 rounds on `input`, then
/// the input added word by word.
ChaChaBlock chacha20_block(const ChaChaBlock& input);

/// Counter-mode ChaCha20 as a stream of 64-bit words. Words 12–13 of the state
/// hold a 64-bit block counter and words 14–15 a 64-bit stream id (the original
/// ChaCha layout), so (key, stream id) names 2^64 independent streams of 2^70
/// bytes each, and any position in a stream is reached in O(1) (`seek`).
class ChaChaStream {
 public:
  ChaChaStream(const ChaChaKey& key, uint64_t stream_id);

  /// The next 64 uniformly random bits.
  uint64_t next_u64() {
    if (index_ == kBufferWords) refill();
    return buffer_[index_++];
  }

  /// Writes the next `count` words to `out`: the words `count` calls of
  /// next_u64() would return.
  void fill(uint64_t* out, std::size_t count);

  /// Uniform on (0, 1] with 53 random bits: never 0, so log() is finite.
  double next_uniform_open_closed() {
    return static_cast<double>((next_u64() >> 11) + 1) * 0x1p-53;
  }

  /// Uniform on [0, 1) with 53 random bits.
  double next_uniform() {
    return static_cast<double>(next_u64() >> 11) * 0x1p-53;
  }

  /// Uniform integer in [0, bound), unbiased (Lemire's multiply-and-reject).
  /// Throws std::invalid_argument if bound is 0.
  uint64_t next_below(uint64_t bound);

  /// Number of 64-bit words drawn so far.
  uint64_t position() const {
    return next_block_ * kWordsPerBlock - (kBufferWords - index_);
  }

  /// Moves to word `position` of the stream (8 words per block).
  void seek(uint64_t position);

  static constexpr std::size_t kWordsPerBlock = 8;

 private:
  // Blocks are made sixteen at a time, lane by lane, which the compiler turns
  // into SIMD code (an AVX2 clone where the CPU has it).
  static constexpr std::size_t kBlocksPerRefill = 16;
  static constexpr std::size_t kBufferWords = kWordsPerBlock * kBlocksPerRefill;

  void refill();

  ChaChaKey key_;
  uint64_t stream_id_;
  uint64_t next_block_ = 0;  // block counter of the next refill
  std::array<uint64_t, kBufferWords> buffer_{};
  std::size_t index_ = kBufferWords;  // next word of buffer_; end = empty
};

}  // namespace dptrain::dp
