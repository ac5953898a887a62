#include "dptrain/dp/mechanism/secure_random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace dptrain::dp {
namespace {

constexpr uint32_t rotl(uint32_t x, int n) {
  return (x << n) | (x >> (32 - n));
}

inline void quarter_round(uint32_t& a, uint32_t& b, uint32_t& c, uint32_t& d) {
  a += b;
  d = rotl(d ^ a, 16);
  c += d;
  b = rotl(b ^ c, 12);
  a += b;
  d = rotl(d ^ a, 8);
  c += d;
  b = rotl(b ^ c, 7);
}

// The quarter round on kLanes blocks at once, one lane per block.
constexpr std::size_t kLanes = 16;
using Lanes = uint32_t[kLanes];

inline void quarter_rounds(Lanes& a, Lanes& b, Lanes& c, Lanes& d) {
  for (std::size_t l = 0; l < kLanes; ++l) {
    quarter_round(a[l], b[l], c[l], d[l]);
  }
}

// "expand 32-byte k", RFC 8439 §2.3.
constexpr uint32_t kSigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};

bool fill_from_getrandom(unsigned char* out, std::size_t size) {
  while (size > 0) {
    const ssize_t got = getrandom(out, size, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    out += got;
    size -= static_cast<std::size_t>(got);
  }
  return true;
}

void fill_from_urandom(unsigned char* out, std::size_t size) {
  std::FILE* f = std::fopen("/dev/urandom", "rb");
  if (f == nullptr) {
    throw std::runtime_error(
        "cannot read OS entropy: getrandom failed and /dev/urandom cannot be "
        "opened: " +
        std::string(std::strerror(errno)));
  }
  const std::size_t got = std::fread(out, 1, size, f);
  std::fclose(f);
  if (got != size) {
    throw std::runtime_error("cannot read OS entropy: /dev/urandom gave " +
                             std::to_string(got) + " of " +
                             std::to_string(size) + " bytes");
  }
}

}  // namespace

void fill_os_entropy(void* out, std::size_t size) {
  auto* bytes = static_cast<unsigned char*>(out);
  if (!fill_from_getrandom(bytes, size)) fill_from_urandom(bytes, size);
}

ChaChaKey os_entropy_key() {
  ChaChaKey key;
  fill_os_entropy(key.data(), sizeof(key));
  return key;
}

ChaChaKey key_from_seed(uint64_t seed) {
  // SplitMix64 (Steele, Lea & Flood 2014): distinct seeds give unrelated keys.
  ChaChaKey key;
  uint64_t x = seed;
  for (std::size_t i = 0; i < key.size(); i += 2) {
    x += 0x9e3779b97f4a7c15ULL;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    key[i] = static_cast<uint32_t>(z);
    key[i + 1] = static_cast<uint32_t>(z >> 32);
  }
  return key;
}

ChaChaBlock chacha20_block(const ChaChaBlock& input) {
  ChaChaBlock x = input;
  for (int round = 0; round < 10; ++round) {
    quarter_round(x[0], x[4], x[8], x[12]);
    quarter_round(x[1], x[5], x[9], x[13]);
    quarter_round(x[2], x[6], x[10], x[14]);
    quarter_round(x[3], x[7], x[11], x[15]);
    quarter_round(x[0], x[5], x[10], x[15]);
    quarter_round(x[1], x[6], x[11], x[12]);
    quarter_round(x[2], x[7], x[8], x[13]);
    quarter_round(x[3], x[4], x[9], x[14]);
  }
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += input[i];
  return x;
}

ChaChaStream::ChaChaStream(const ChaChaKey& key, uint64_t stream_id)
    : key_(key), stream_id_(stream_id) {}

void ChaChaStream::refill() {
  static_assert(kLanes == kBlocksPerRefill, "one lane per block");
  // x[w][l]: word w of block next_block_ + l (structure of arrays).
  uint32_t input[16][kLanes];
  uint32_t x[16][kLanes];
  for (std::size_t l = 0; l < kLanes; ++l) {
    for (std::size_t i = 0; i < 4; ++i) input[i][l] = kSigma[i];
    for (std::size_t i = 0; i < 8; ++i) input[4 + i][l] = key_[i];
    const uint64_t counter = next_block_ + l;
    input[12][l] = static_cast<uint32_t>(counter);
    input[13][l] = static_cast<uint32_t>(counter >> 32);
    input[14][l] = static_cast<uint32_t>(stream_id_);
    input[15][l] = static_cast<uint32_t>(stream_id_ >> 32);
  }
  std::memcpy(x, input, sizeof(x));
  for (int round = 0; round < 10; ++round) {
    quarter_rounds(x[0], x[4], x[8], x[12]);
    quarter_rounds(x[1], x[5], x[9], x[13]);
    quarter_rounds(x[2], x[6], x[10], x[14]);
    quarter_rounds(x[3], x[7], x[11], x[15]);
    quarter_rounds(x[0], x[5], x[10], x[15]);
    quarter_rounds(x[1], x[6], x[11], x[12]);
    quarter_rounds(x[2], x[7], x[8], x[13]);
    quarter_rounds(x[3], x[4], x[9], x[14]);
  }
  for (std::size_t l = 0; l < kLanes; ++l) {
    for (std::size_t j = 0; j < kWordsPerBlock; ++j) {
      const uint32_t lo = x[2 * j][l] + input[2 * j][l];
      const uint32_t hi = x[2 * j + 1][l] + input[2 * j + 1][l];
      buffer_[l * kWordsPerBlock + j] =
          static_cast<uint64_t>(lo) | (static_cast<uint64_t>(hi) << 32);
    }
  }
  next_block_ += kLanes;
  index_ = 0;
}

uint64_t ChaChaStream::next_below(uint64_t bound) {
  if (bound == 0) {
    throw std::invalid_argument("next_below: bound must be > 0, got 0");
  }
  // Lemire (2019), "Fast random integer generation in an interval".
  unsigned __int128 m = static_cast<unsigned __int128>(next_u64()) * bound;
  auto low = static_cast<uint64_t>(m);
  if (low < bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(next_u64()) * bound;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

void ChaChaStream::seek(uint64_t position) {
  next_block_ = position / kWordsPerBlock;
  index_ = kBufferWords;
  const auto within = static_cast<std::size_t>(position % kWordsPerBlock);
  if (within != 0) {
    refill();  // the buffer now starts at the block holding `position`
    index_ = within;
  }
}

}  // namespace dptrain::dp
