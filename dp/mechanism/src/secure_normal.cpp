// The hardened N(0, 1) sampler: ChaCha20 words → 53-bit uniforms → sums of
// four Box–Muller draws, all in double. The arithmetic is written as flat,
// branch-free loops over arrays (bit operations, +, ×, ÷, √ and polynomials)
// so that the compiler turns them into SIMD code; the AVX2 clone is picked at
// run time where the CPU has it. libm's log, cos and sin are replaced by the
// polynomials below because they do not vectorise; the test
// SecureNoise.KernelMatchesLibmBoxMullerOnTheSameWords compares every output
// with the same algorithm computed by libm.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "dptrain/dp/mechanism/noise_generator.h"
#include "simd_clones.h"

namespace dptrain::dp {
namespace {

// Coordinates per parallel chunk; each pair of coordinates consumes four
// Box–Muller pairs of two 64-bit words. Chunk c always reads words
// [c·kChunk·4, (c+1)·kChunk·4) of the stream, whatever the thread count.
constexpr int64_t kChunk = kSecureNormalChunk;
constexpr int64_t kWordsPerCoordinate = 4;
constexpr int kDrawsPerPair = 4;

inline double as_double(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof(d));
  return d;
}
inline uint64_t as_bits(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof(bits));
  return bits;
}

constexpr uint64_t kMantissa = (uint64_t{1} << 52) - 1;
constexpr uint64_t kTwo52Bits = 0x4330000000000000ULL;  // 2^52 as a double

// x < 2^52 as a double, exactly, without an integer → double conversion
// (AVX2 has none for 64-bit lanes, and the unsigned one branches): the bits
// of 2^52 + x, less 2^52.
inline double small_double(uint64_t x) {
  return as_double(kTwo52Bits | x) - 0x1p52;
}

// x < 2^53 as a double, exactly: the low 52 bits as above, the top bit added
// as 2^52 or 0 (the bits of 2^52 times the bit).
inline double exact_double(uint64_t x) {
  return small_double(x & kMantissa) + as_double((x >> 52) * kTwo52Bits);
}

// c[0]·z^(N−1) + … + c[N−1] by Horner's rule (unrolled: N is a constant).
template <std::size_t N>
inline double horner(double z, const double (&c)[N]) {
  double p = c[0];
  for (std::size_t i = 1; i < N; ++i) p = p * z + c[i];
  return p;
}

// ln(u) for u in [2^-53, 1]. u = 2^e·m with m in [√½, √2); ln m =
// 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.1716, by its series to s^21 (the next
// term is below 2^-57 of the sum); e·ln 2 in two parts (Cody–Waite).
inline double log_unit(double u) {
  const uint64_t bits = as_bits(u);
  const uint64_t exponent = bits >> 52;  // u > 0: no sign bit
  const uint64_t mantissa = bits & kMantissa;
  // 1 when 1.mantissa > √2 (0x3ff6a09e667f3bcd), in integers: no branch.
  const uint64_t big = (0x6a09e667f3bcdULL - mantissa) >> 63;
  const double m = as_double(mantissa | (0x3ff0000000000000ULL - (big << 52)));
  const double e = small_double(exponent + big) - 1023.0;
  const double s = (m - 1.0) / (m + 1.0);
  const double z = s * s;
  // 1/3 + z/5 + … + z^9/21, highest power first.
  constexpr double kAtanhSeries[] = {1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15,
                                     1.0 / 13, 1.0 / 11, 1.0 / 9,  1.0 / 7,
                                     1.0 / 5,  1.0 / 3};
  const double p = horner(z, kAtanhSeries);
  const double log_m = 2.0 * s + 2.0 * s * z * p;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 32 bits of ln 2
  constexpr double kLn2Lo = 1.90821492927058770002e-10;  // the rest
  return e * kLn2Hi + (e * kLn2Lo + log_m);
}

// cos(2π·x/2^53) and sin(2π·x/2^53) for x < 2^53. The turn is cut into
// quarters exactly in integers: x = q·2^51 + f with f in [−2^50, 2^50), so
// the angle is q·π/2 + y with |y| ≤ π/4, where the Taylor series (to y^17
// and y^18) are below 2^-55 of the value.
inline void cos_sin_turn(uint64_t x, double& cos_out, double& sin_out) {
  const uint64_t q = (x + (uint64_t{1} << 50)) >> 51;              // 0..4
  const uint64_t f_shifted = x + (uint64_t{1} << 51) - (q << 51);  // f + 2^51
  const double f =
      (as_double(kTwo52Bits | f_shifted) - (0x1p52 + 0x1p51)) * 0x1p-51;
  constexpr double kHalfPiHi = 1.57079632673412561417e+00;
  constexpr double kHalfPiLo = 6.07710050650619224932e-11;
  const double y = f * kHalfPiHi + f * kHalfPiLo;
  const double z = y * y;
  // sin y = y + y·z·S(z), cos y = 1 − z·C(z): the Taylor coefficients
  // ±1/n!, highest power first (S ends at −1/3!, C at +1/2!).
  constexpr double kSinSeries[] = {1.0 / 355687428096000.0,
                                   -1.0 / 1307674368000.0,
                                   1.0 / 6227020800.0,
                                   -1.0 / 39916800.0,
                                   1.0 / 362880.0,
                                   -1.0 / 5040.0,
                                   1.0 / 120.0,
                                   -1.0 / 6.0};
  constexpr double kCosSeries[] = {1.0 / 6402373705728000.0,
                                   -1.0 / 20922789888000.0,
                                   1.0 / 87178291200.0,
                                   -1.0 / 479001600.0,
                                   1.0 / 3628800.0,
                                   -1.0 / 40320.0,
                                   1.0 / 720.0,
                                   -1.0 / 24.0,
                                   0.5};
  const double sin_y = y + y * z * horner(z, kSinSeries);
  const double cos_y = 1.0 - z * horner(z, kCosSeries);
  // Rotate by q quarter turns: (c, s) → (−s, c) for each.
  const uint64_t quarter = q & 3;
  const uint64_t swap = uint64_t{0} - (quarter & 1);  // all ones when odd
  const uint64_t c_bits = (as_bits(cos_y) & ~swap) | (as_bits(sin_y) & swap);
  const uint64_t s_bits = (as_bits(sin_y) & ~swap) | (as_bits(cos_y) & swap);
  const uint64_t c_sign = (((quarter + 1) >> 1) & 1) << 63;  // q = 1, 2
  const uint64_t s_sign = (quarter >> 1) << 63;              // q = 2, 3
  cos_out = as_double(c_bits ^ c_sign);
  sin_out = as_double(s_bits ^ s_sign);
}

// `pairs` pairs of N(0, 1) draws from words[0, 8·pairs): draw k of pair j
// takes u1 from word 8j + 2k (on (0, 1]) and u2 from word 8j + 2k + 1 (on
// [0, 1)); r = √(−2 ln u1), θ = 2π·u2; out[2j] = ½·Σ_k r_k cos θ_k and
// out[2j + 1] = ½·Σ_k r_k sin θ_k, summed in k order. `scratch` holds
// 2·kDrawsPerPair·pairs doubles.
DPTRAIN_SIMD_CLONES
void box_muller_sums(const uint64_t* words, double* out, double* scratch,
                     int64_t pairs) {
  const int64_t draws = pairs * kDrawsPerPair;
  double* cos_part = scratch;
  double* sin_part = scratch + draws;
  for (int64_t i = 0; i < draws; ++i) {
    const double u1 = exact_double((words[2 * i] >> 11) + 1) * 0x1p-53;
    const double r = __builtin_sqrt(-2.0 * log_unit(u1));
    double c, s;
    cos_sin_turn(words[2 * i + 1] >> 11, c, s);
    cos_part[i] = r * c;
    sin_part[i] = r * s;
  }
  for (int64_t j = 0; j < pairs; ++j) {
    double a = 0.0;
    double b = 0.0;
    for (int k = 0; k < kDrawsPerPair; ++k) {
      a += cos_part[kDrawsPerPair * j + k];
      b += sin_part[kDrawsPerPair * j + k];
    }
    out[2 * j] = 0.5 * a;
    out[2 * j + 1] = 0.5 * b;
  }
}

// Coordinates [first, first + numel) of the stream into out[0 … numel);
// first is a multiple of kChunk, and the stream is taken to end at
// first + numel (its last chunk may be short).
template <typename T>
void secure_fill(const ChaChaKey& key, uint64_t stream_id, T* out,
                 int64_t numel, int64_t start = 0) {
  if (numel < 0) {
    throw std::invalid_argument("numel must be >= 0, got " +
                                std::to_string(numel));
  }
  const int64_t chunks = (numel + kChunk - 1) / kChunk;
  const int64_t end_all = start + numel;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    ChaChaStream stream(key, stream_id);
    std::vector<uint64_t> words(kChunk * kWordsPerCoordinate);
    std::vector<double> draws(kChunk);
    std::vector<double> scratch(2 * kDrawsPerPair * (kChunk / 2));
    for (int64_t c = begin; c < end; ++c) {
      const int64_t first = start + c * kChunk;
      const int64_t count = std::min(end_all, first + kChunk) - first;
      const int64_t pairs = (count + 1) / 2;  // an odd tail drops one draw
      stream.seek(static_cast<uint64_t>(first * kWordsPerCoordinate));
      stream.fill(words.data(),
                  static_cast<std::size_t>(pairs * 2 * kWordsPerCoordinate));
      box_muller_sums(words.data(), draws.data(), scratch.data(), pairs);
      for (int64_t j = 0; j < count; ++j) {
        out[first - start + j] = static_cast<T>(draws[j]);
      }
    }
  });
}

}  // namespace

void secure_standard_normal(const ChaChaKey& key, uint64_t stream_id,
                            double* out, int64_t numel) {
  secure_fill(key, stream_id, out, numel);
}

void secure_standard_normal(const ChaChaKey& key, uint64_t stream_id,
                            float* out, int64_t numel) {
  secure_fill(key, stream_id, out, numel);
}

void secure_standard_normal_range(const ChaChaKey& key, uint64_t stream_id,
                                  double* out, int64_t first, int64_t count) {
  if (first < 0 || first % kChunk != 0) {
    throw std::invalid_argument(
        "secure_standard_normal_range: first must be a non-negative "
        "multiple of " +
        std::to_string(kChunk) + ", got " + std::to_string(first));
  }
  secure_fill(key, stream_id, out, count, first);
}

}  // namespace dptrain::dp
