#pragma once

// Sources of standard-normal draws for the Gaussian mechanism. Both hand out
// CPU tensors (float or double, as asked); the noise functions (noise.h)
// scale, cast and move them to the gradient's device, so a seeded run draws
// the same noise on every device.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dptrain/dp/archive/archive_fwd.h"
#include "dptrain/dp/mechanism/secure_random.h"

namespace dptrain::dp {

/// Where the noise of a private step comes from.
class NoiseGenerator {
 public:
  virtual ~NoiseGenerator() = default;

  /// `numel` i.i.d. N(0, 1) draws: a contiguous 1-D CPU tensor of `dtype`
  /// (kFloat or kDouble). Throws std::invalid_argument if numel < 0 or for
  /// another dtype.
  virtual at::Tensor standard_normal(int64_t numel, at::ScalarType dtype) = 0;

  /// standard_normal(numel, kDouble).
  at::Tensor standard_normal(int64_t numel) {
    return standard_normal(numel, at::kDouble);
  }

  /// Receives consecutive blocks of one draw: z[0..count) are coordinates
  /// offset … offset + count − 1, valid during the call only.
  using BlockConsumer =
      std::function<void(int64_t offset, const double* z, int64_t count)>;

  /// One draw of `numel` N(0, 1) doubles — the same numbers, and the same
  /// use of the generator, as standard_normal(numel, kDouble) — handed to
  /// `consume` in order, in blocks of at most `block` coordinates. The
  /// default draws the whole tensor and hands it over as one block;
  /// SecureNoise draws block by block into one buffer it keeps, so that a
  /// step does not map and zero a fresh tensor of numel doubles. Throws
  /// std::invalid_argument if numel < 0 or block < 1.
  virtual void standard_normal_blocks(int64_t numel, int64_t block,
                                      const BlockConsumer& consume);

  /// True when the same construction gives the same draws (seeded runs).
  virtual bool reproducible() const = 0;

  /// True (the default) when the noise must be drawn in double, scaled by σC
  /// and added to the gradient in double, and rounded once to the gradient's
  /// dtype (privacy invariant 2). Rounding the draw to float first and
  /// scaling it in float makes the set of reachable noisy values depend on
  /// the gradient — the floating-point attack of Mironov (2012) that a
  /// hardened sampler exists to prevent. SeededNoise, which is not for
  /// release, returns false and draws and adds in the gradient's dtype.
  virtual bool round_once() const { return true; }

  /// "seeded" or "secure"; stored in checkpoints.
  virtual std::string name() const = 0;

  /// Writes the generator's kind and, if reproducible, its state (flat keys).
  virtual void save(torch::serialize::OutputArchive& archive) const = 0;

  /// Restores what save() wrote; throws std::runtime_error, changing nothing,
  /// on a missing entry or another kind of generator.
  virtual void load(torch::serialize::InputArchive& archive) = 0;
};

/// Reproducible noise from a seeded LibTorch CPU generator (mt19937 with
/// Box–Muller, in the asked dtype: float draws are about four times faster
/// than double ones). For experiments and resume-equality tests: its state is
/// predictable from the seed, so it offers no protection against anyone who
/// knows the seed, and LibTorch's sampler is not hardened against
/// floating-point attacks. Use SecureNoise for a released model.
class SeededNoise final : public NoiseGenerator {
 public:
  explicit SeededNoise(uint64_t seed);

  using NoiseGenerator::standard_normal;
  at::Tensor standard_normal(int64_t numel, at::ScalarType dtype) override;
  bool reproducible() const override { return true; }
  /// Float draws, scaled and added in float: fast, and not for release.
  bool round_once() const override { return false; }
  std::string name() const override { return "seeded"; }
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 private:
  mutable at::Generator generator_;  // mutable: its mutex guards save()
};

/// Noise for released models: ChaCha20 keyed from the operating system
/// (fill_os_entropy), and a Gaussian sampler hardened against the
/// floating-point attacks of Mironov (2012) and Holohan & Braghin (2021).
/// Each output is (Z1 + Z2 + Z3 + Z4) / 2 with Zk independent Box–Muller
/// draws, each from its own pair of 53-bit uniforms — the mitigation Holohan &
/// Braghin propose (their Section 5; Opacus' secure_mode does the same with
/// n = 2). A single Box–Muller output can be inverted to the uniforms that
/// made it, so the set of reachable floating-point outputs, and hence the
/// noised value's neighbourhood, leaks information; a sum of independent
/// draws makes every output reachable from very many inputs. We chose this
/// over an exact discrete Gaussian (Canonne, Kamath & Steinke 2020) because
/// that sampler's big-rational rejection loop costs microseconds per draw and
/// a step needs millions; after scaling, the real noise is still rounded into
/// the float32 gradient, where the discrete sampler's exactness would be lost.
///
/// Not reproducible: save() stores only the kind and load() draws a fresh key,
/// so no checkpoint ever holds a key from which the noise could be recomputed
/// and subtracted. The key is never shown.
class SecureNoise final : public NoiseGenerator {
 public:
  /// Keys itself from the OS; throws std::runtime_error if that fails.
  SecureNoise();

  using NoiseGenerator::standard_normal;
  /// Computed in double whatever `dtype`; a float result is rounded from it.
  at::Tensor standard_normal(int64_t numel, at::ScalarType dtype) override;
  /// Blocks rounded up to a multiple of kSecureNormalChunk.
  void standard_normal_blocks(int64_t numel, int64_t block,
                              const BlockConsumer& consume) override;
  bool reproducible() const override { return false; }
  std::string name() const override { return "secure"; }
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 private:
  ChaChaKey key_;
  uint64_t calls_ = 0;  // stream id of the next call: each call a new stream
  std::vector<double> buffer_;  // standard_normal_blocks' block
};

/// The secure sampler's unit of work: coordinates [c·k, (c+1)·k) of a stream
/// always come from the same ChaCha20 words.
constexpr int64_t kSecureNormalChunk = 4096;

/// The secure sampler on an explicit key and stream: writes `numel` N(0, 1)
/// draws to `out`, in parallel over fixed chunks (the result does not depend
/// on the thread count). Exposed for tests and benchmarks only — a key you
/// chose is not secret.
void secure_standard_normal(const ChaChaKey& key, uint64_t stream_id,
                            double* out, int64_t numel);
/// The same draws rounded to float.
void secure_standard_normal(const ChaChaKey& key, uint64_t stream_id,
                            float* out, int64_t numel);
/// Coordinates [first, first + count) of the draws that
/// secure_standard_normal(key, stream_id, ·, numel) writes, for first a
/// multiple of kSecureNormalChunk and first + count either numel or a
/// multiple of it (the same numbers); out receives `count` doubles. Throws
/// std::invalid_argument otherwise.
void secure_standard_normal_range(const ChaChaKey& key, uint64_t stream_id,
                                  double* out, int64_t first, int64_t count);

}  // namespace dptrain::dp
