#include "dptrain/dp/mechanism/secure_random.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "simd_clones.h"

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

// ChaCha20's ten double rounds (columns, then diagonals) on a state of
// sixteen words, or of sixteen rows of lanes, by the matching quarter round.
template <typename State, typename QuarterRound>
inline void twenty_rounds(State& x, QuarterRound quarter) {
  for (int round = 0; round < 10; ++round) {
    quarter(x[0], x[4], x[8], x[12]);
    quarter(x[1], x[5], x[9], x[13]);
    quarter(x[2], x[6], x[10], x[14]);
    quarter(x[3], x[7], x[11], x[15]);
    quarter(x[0], x[5], x[10], x[15]);
    quarter(x[1], x[6], x[11], x[12]);
    quarter(x[2], x[7], x[8], x[13]);
    quarter(x[3], x[4], x[9], x[14]);
  }
}

// "expand 32-byte k", RFC 8439 §2.3.
constexpr uint32_t kSigma[4] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};

// Blocks first_block … first_block + kLanes − 1 of (key, stream_id), as
// 8·kLanes 64-bit words (block by block, low word first) at `out`.
DPTRAIN_SIMD_CLONES
void chacha20_lanes(const ChaChaKey& key, uint64_t stream_id,
                    uint64_t first_block, uint64_t* out) {
  // x[w][l]: word w of block first_block + l (structure of arrays).
  uint32_t input[16][kLanes];
  uint32_t x[16][kLanes];
  for (std::size_t l = 0; l < kLanes; ++l) {
    for (std::size_t i = 0; i < 4; ++i) input[i][l] = kSigma[i];
    for (std::size_t i = 0; i < 8; ++i) input[4 + i][l] = key[i];
    const uint64_t counter = first_block + l;
    input[12][l] = static_cast<uint32_t>(counter);
    input[13][l] = static_cast<uint32_t>(counter >> 32);
    input[14][l] = static_cast<uint32_t>(stream_id);
    input[15][l] = static_cast<uint32_t>(stream_id >> 32);
  }
  std::memcpy(x, input, sizeof(x));
  twenty_rounds(x, quarter_rounds);
  for (std::size_t l = 0; l < kLanes; ++l) {
    for (std::size_t j = 0; j < 8; ++j) {
      const uint32_t lo = x[2 * j][l] + input[2 * j][l];
      const uint32_t hi = x[2 * j + 1][l] + input[2 * j + 1][l];
      out[l * 8 + j] =
          static_cast<uint64_t>(lo) | (static_cast<uint64_t>(hi) << 32);
    }
  }
}

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
  twenty_rounds(x, quarter_round);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += input[i];
  return x;
}

ChaChaStream::ChaChaStream(const ChaChaKey& key, uint64_t stream_id)
    : key_(key), stream_id_(stream_id) {}

void ChaChaStream::refill() {
  static_assert(kLanes == kBlocksPerRefill, "one lane per block");
  chacha20_lanes(key_, stream_id_, next_block_, buffer_.data());
  next_block_ += kLanes;
  index_ = 0;
}

void ChaChaStream::fill(uint64_t* out, std::size_t count) {
  while (count > 0) {
    if (index_ == kBufferWords) refill();
    const std::size_t n = std::min(count, kBufferWords - index_);
    std::memcpy(out, buffer_.data() + index_, n * sizeof(uint64_t));
    index_ += n;
    out += n;
    count -= n;
  }
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
