#include "dptrain/dp/mechanism/noise.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/special_functions/erf.hpp>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "archive_helpers.h"
#include "dptrain/dp/mechanism/noise_generator.h"
#include "error_helpers.h"

namespace dptrain::dp {
namespace {

using dptrain::test_support::error_of;
using dptrain::test_support::round_trip;

// Kolmogorov's limiting distribution with Stephens' small-sample correction:
// P(sqrt(n) D > λ) for the one-sample two-sided KS statistic D.
double ks_p_value(double d, std::size_t n) {
  const double sn = std::sqrt(static_cast<double>(n));
  const double lambda = (sn + 0.12 + 0.11 / sn) * d;
  if (lambda < 0.2) return 1.0;
  double p = 0;
  for (int k = 1; k <= 100; ++k) {
    p += 2 * ((k % 2 == 1) ? 1 : -1) * std::exp(-2.0 * k * k * lambda * lambda);
  }
  return std::clamp(p, 0.0, 1.0);
}

// Two-sided tests of "x ~ N(0, sigma²)" at level alpha: mean (z test),
// variance (Σx²/σ² ~ χ²(n), mean known) and the KS distance to the CDF.
struct NormalTest {
  bool mean_ok;
  bool variance_ok;
  bool ks_ok;
};

NormalTest test_normal(std::vector<double> x, double sigma, double alpha) {
  const auto n = x.size();
  double sum = 0;
  double sum_sq = 0;
  for (double v : x) {
    sum += v;
    sum_sq += v * v;
  }
  const double z = sum / (sigma * std::sqrt(static_cast<double>(n)));
  // |z| below Φ⁻¹(1 − α/2) = √2·erfc⁻¹(α).
  const double z_crit = std::sqrt(2.0) * boost::math::erfc_inv(alpha);
  boost::math::chi_squared chi2(static_cast<double>(n));
  const double statistic = sum_sq / (sigma * sigma);
  std::sort(x.begin(), x.end());
  double d = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double cdf = 0.5 * std::erfc(-x[i] / (sigma * std::sqrt(2.0)));
    d = std::max({d, cdf - static_cast<double>(i) / n,
                  static_cast<double>(i + 1) / n - cdf});
  }
  return {std::abs(z) < z_crit,
          statistic > boost::math::quantile(chi2, alpha / 2) &&
              statistic<boost::math::quantile(chi2, 1 - alpha / 2),
                        ks_p_value(d, n)>
                  alpha};
}

std::vector<double> values_of(const at::Tensor& t) {
  const at::Tensor flat = t.to(at::kDouble).contiguous().view(-1);
  return {flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel()};
}

// Noise of one finalize_noisy_gradient call on zero grads: σ = 1.5, C = 2,
// B = 1, so each coordinate should be N(0, 3²). Float parameters take the
// float draws.
std::vector<double> draw_noise(NoiseGenerator& generator, int64_t n,
                               at::ScalarType dtype = at::kDouble) {
  at::Tensor p = torch::zeros({n / 2, 2}, dtype).requires_grad_();
  p.mutable_grad() = torch::zeros_like(p);
  finalize_noisy_gradient({p}, {1.5, 2.0, 1.0}, generator);
  return values_of(p.grad());
}

void expect_normal_with_sigma_three(NoiseGenerator& generator,
                                    at::ScalarType dtype = at::kDouble) {
  // α = 1e-6 per test: a secure run is not seeded, so a false alarm must be
  // negligible; with n = 2e5 the wrong σ are still rejected by far.
  const std::vector<double> x = draw_noise(generator, 200000, dtype);
  const NormalTest right = test_normal(x, 3.0, 1e-6);
  EXPECT_TRUE(right.mean_ok);
  EXPECT_TRUE(right.variance_ok);
  EXPECT_TRUE(right.ks_ok);
  for (double wrong : {2.0, 4.5}) {  // 2/3 σ and 3/2 σ
    const NormalTest t = test_normal(x, wrong, 1e-6);
    EXPECT_FALSE(t.variance_ok) << "sigma " << wrong;
    EXPECT_FALSE(t.ks_ok) << "sigma " << wrong;
  }
}

TEST(SeededNoise, IsNormalWithStdSigmaTimesC) {
  SeededNoise generator(123);
  expect_normal_with_sigma_three(generator);
}

TEST(SecureNoise, IsNormalWithStdSigmaTimesC) {
  SecureNoise generator;
  expect_normal_with_sigma_three(generator);
}

TEST(SeededNoise, FloatParametersGetNormalNoiseWithStdSigmaTimesC) {
  SeededNoise generator(321);
  expect_normal_with_sigma_three(generator, at::kFloat);
}

TEST(SecureNoise, FloatParametersGetNormalNoiseWithStdSigmaTimesC) {
  SecureNoise generator;
  expect_normal_with_sigma_three(generator, at::kFloat);
}

TEST(SecureNoise, FloatDrawsAreTheDoubleDrawsRounded) {
  std::vector<double> x(10001);
  std::vector<float> y(x.size());
  secure_standard_normal(key_from_seed(4), 2, x.data(),
                         static_cast<int64_t>(x.size()));
  secure_standard_normal(key_from_seed(4), 2, y.data(),
                         static_cast<int64_t>(y.size()));
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(y[i], static_cast<float>(x[i])) << i;
  }
}

// The sampler computes log, cos and sin by its own vectorisable polynomials;
// here the same stream words go through libm's, in the documented algorithm:
// draw k of pair j takes u1 (on (0, 1]) then u2 (on [0, 1)) from the stream,
// r = sqrt(-2 ln u1), θ = 2π u2, and the pair is ½ Σ_k r_k (cos θ_k, sin θ_k).
TEST(SecureNoise, KernelMatchesLibmBoxMullerOnTheSameWords) {
  const ChaChaKey key = key_from_seed(21);
  const int64_t n = 3 * 4096 + 7;  // whole chunks and an odd tail
  std::vector<double> got(n);
  secure_standard_normal(key, 5, got.data(), n);
  ChaChaStream stream(key, 5);
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  double max_error = 0.0;
  for (int64_t i = 0; i < n; i += 2) {
    double a = 0.0;
    double b = 0.0;
    for (int k = 0; k < 4; ++k) {
      const double u1 = stream.next_uniform_open_closed();
      const double u2 = stream.next_uniform();
      const double r = std::sqrt(-2.0 * std::log(u1));
      a += r * std::cos(kTwoPi * u2);
      b += r * std::sin(kTwoPi * u2);
    }
    max_error = std::max(max_error, std::abs(got[i] - 0.5 * a));
    if (i + 1 < n)
      max_error = std::max(max_error, std::abs(got[i + 1] - 0.5 * b));
  }
  // libm's θ = 2π·u2 alone is rounded by up to 4.4e-16; r ≤ 8.6.
  EXPECT_LT(max_error, 1e-13);
}

// A hardened generator with known draws: the secure sampler on a fixed key,
// in whatever dtype the caller asks (double draws rounded for float).
class FixedKeyNoise final : public NoiseGenerator {
 public:
  using NoiseGenerator::standard_normal;
  at::Tensor standard_normal(int64_t numel, at::ScalarType dtype) override {
    requested.push_back(dtype);
    at::Tensor z = at::empty({numel}, at::kDouble);
    secure_standard_normal(key_from_seed(11), 0, z.data_ptr<double>(), numel);
    return z.to(dtype);
  }
  // split > 0: hands the draw over in blocks of `split` coordinates (as a
  // blocked generator does), whatever block add_gaussian_noise asks for.
  void standard_normal_blocks(int64_t numel, int64_t block,
                              const BlockConsumer& consume) override {
    if (split == 0) {
      NoiseGenerator::standard_normal_blocks(numel, block, consume);
      return;
    }
    const at::Tensor z = standard_normal(numel, at::kDouble);
    for (int64_t first = 0; first < numel; first += split) {
      consume(first, z.data_ptr<double>() + first,
              std::min(split, numel - first));
    }
  }
  bool reproducible() const override { return true; }
  std::string name() const override { return "fixed-key"; }
  int64_t split = 0;
  void save(torch::serialize::OutputArchive&) const override {}
  void load(torch::serialize::InputArchive&) override {}
  std::vector<at::ScalarType> requested;
};

TEST(AddGaussianNoise, HardenedNoiseIsScaledAndAddedInDoubleAndRoundedOnce) {
  // Privacy invariant 2: float(g + σC·z) with σC·z and the sum in double.
  // Rounding z to float and scaling it in float (the old float path) misses
  // this for most coordinates.
  const int64_t n = 20000;
  at::Tensor p = torch::zeros({n}).requires_grad_();
  const at::Tensor g = torch::linspace(-3.0, 3.0, n);
  p.mutable_grad() = g.clone();
  const double noise_std = 1.2345678901234567 * 0.1;
  FixedKeyNoise generator;
  add_gaussian_noise({p}, noise_std, generator);
  EXPECT_EQ(generator.requested, std::vector<at::ScalarType>{at::kDouble});
  at::Tensor z = at::empty({n}, at::kDouble);
  secure_standard_normal(key_from_seed(11), 0, z.data_ptr<double>(), n);
  const auto* gz = z.data_ptr<double>();
  const at::Tensor g_cpu = g.contiguous();
  const auto* gf = g_cpu.data_ptr<float>();
  const auto* out = p.grad().data_ptr<float>();
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double exact = static_cast<double>(gf[i]) + noise_std * gz[i];
    mismatches += out[i] != static_cast<float>(exact);
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(p.grad().scalar_type(), at::kFloat);
}

// The same for every layout: a contiguous float gradient (one pass), a
// transposed one (the general path), a double one; the draw is one stream
// over the parameters in order.
TEST(AddGaussianNoise, HardenedNoiseRoundsOnceForEveryLayoutAndDtype) {
  at::Tensor a = torch::zeros({300, 7}).requires_grad_();
  a.mutable_grad() = torch::randn({300, 7});
  at::Tensor b = torch::zeros({7, 300}).requires_grad_();
  b.mutable_grad() = torch::randn({300, 7}).t();  // not contiguous
  at::Tensor c = torch::zeros({500}, at::kDouble).requires_grad_();
  c.mutable_grad() = torch::randn({500}, at::kDouble);
  std::vector<at::Tensor> before;
  for (const auto& p : {a, b, c}) before.push_back(p.grad().clone());
  const double noise_std = 0.7654321;
  FixedKeyNoise generator;
  add_gaussian_noise({a, b, c}, noise_std, generator);
  const int64_t n = a.numel() + b.numel() + c.numel();
  at::Tensor z = at::empty({n}, at::kDouble);
  secure_standard_normal(key_from_seed(11), 0, z.data_ptr<double>(), n);
  int64_t offset = 0;
  int64_t mismatches = 0;
  std::vector<at::Tensor> params = {a, b, c};
  for (size_t k = 0; k < params.size(); ++k) {
    // Row-major order of the parameter's shape, whatever the grad's strides.
    const at::Tensor g = before[k].to(at::kDouble).contiguous().view(-1);
    const at::Tensor got =
        params[k].grad().to(at::kDouble).contiguous().view(-1);
    const auto* gz = z.data_ptr<double>() + offset;
    for (int64_t i = 0; i < g.numel(); ++i) {
      const double gi = g.data_ptr<double>()[i];
      const double exact = gi + noise_std * gz[i];
      const double value = got.data_ptr<double>()[i];
      if (params[k].grad().scalar_type() == at::kFloat) {
        mismatches += value != static_cast<double>(static_cast<float>(exact));
      } else {
        // A double sum is the result: LibTorch's add may fuse the product
        // (one rounding instead of two), which is as exact.
        mismatches += value != exact && value != std::fma(noise_std, gz[i], gi);
      }
    }
    offset += g.numel();
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_FALSE(b.grad().is_contiguous());
}

// A draw handed over in blocks that straddle parameters (97 coordinates
// each) lands exactly where the whole draw would, float and double alike.
TEST(AddGaussianNoise, BlocksOfTheDrawLandOnTheirParameters) {
  std::vector<at::Tensor> params = {
      torch::zeros({300, 7}).requires_grad_(),
      torch::zeros({13}, at::kDouble).requires_grad_(),
      torch::zeros({5}).requires_grad_(false),  // frozen: no noise
      torch::zeros({41, 3}).requires_grad_()};
  std::vector<at::Tensor> before;
  for (auto& p : params) {
    p.mutable_grad() = torch::randn(p.sizes(), p.options());
    before.push_back(p.grad().clone());
  }
  const double noise_std = 0.31;
  FixedKeyNoise generator;
  generator.split = 97;
  add_gaussian_noise(params, noise_std, generator);
  const int64_t n = 300 * 7 + 13 + 41 * 3;
  at::Tensor z = at::empty({n}, at::kDouble);
  secure_standard_normal(key_from_seed(11), 0, z.data_ptr<double>(), n);
  int64_t offset = 0;
  int64_t mismatches = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    const auto g = before[k].to(at::kDouble).view(-1);
    const auto got = params[k].grad().to(at::kDouble).view(-1);
    if (!params[k].requires_grad()) {
      EXPECT_TRUE(at::equal(got, g));
      continue;
    }
    for (int64_t i = 0; i < g.numel(); ++i) {
      const double gi = g[i].item<double>();
      const double zi = z[offset + i].item<double>();
      const double exact = gi + noise_std * zi;
      const double value = got[i].item<double>();
      if (params[k].scalar_type() == at::kFloat) {
        mismatches += value != static_cast<double>(static_cast<float>(exact));
      } else {
        mismatches += value != exact && value != std::fma(noise_std, zi, gi);
      }
    }
    offset += g.numel();
  }
  EXPECT_EQ(mismatches, 0);
}

// The secure sampler drawn by ranges gives the whole draw's numbers, so that
// SecureNoise's blocked draw is the draw the accountant assumes.
TEST(SecureNoise, RangesOfAStreamAreTheWholeDraw) {
  const int64_t chunk = kSecureNormalChunk;
  const int64_t n = 3 * chunk + 1235;  // odd, and not a multiple of a chunk
  std::vector<double> whole(n);
  secure_standard_normal(key_from_seed(5), 9, whole.data(), n);
  for (const int64_t block : {chunk, 2 * chunk}) {
    std::vector<double> parts(n);
    for (int64_t first = 0; first < n; first += block) {
      secure_standard_normal_range(key_from_seed(5), 9, parts.data() + first,
                                   first, std::min(block, n - first));
    }
    EXPECT_EQ(parts, whole) << "block " << block;
  }
  std::vector<double> out(10);
  EXPECT_THROW(
      secure_standard_normal_range(key_from_seed(5), 9, out.data(), 100, 10),
      std::invalid_argument);
  // SecureNoise's own blocks: consecutive, at most the block (rounded up to
  // a chunk), N(0, 1).
  SecureNoise secure;
  std::vector<double> drawn;
  int64_t next = 0;
  secure.standard_normal_blocks(
      n, 1000, [&](int64_t offset, const double* z, int64_t count) {
        EXPECT_EQ(offset, next);
        EXPECT_LE(count, chunk);
        drawn.insert(drawn.end(), z, z + count);
        next += count;
      });
  EXPECT_EQ(next, n);
  const NormalTest t = test_normal(drawn, 1.0, 1e-3);
  EXPECT_TRUE(t.mean_ok && t.variance_ok && t.ks_ok);
  EXPECT_THROW(secure.standard_normal_blocks(10, 0, [](auto, auto, auto) {}),
               std::invalid_argument);
}

TEST(AddGaussianNoise, SeededNoiseKeepsTheFloatFastPath) {
  at::Tensor p = torch::zeros({8}).requires_grad_();
  SeededNoise seeded(3);
  EXPECT_FALSE(seeded.round_once());
  EXPECT_TRUE(SecureNoise().round_once());
  add_gaussian_noise({p}, 1.0, seeded);
  EXPECT_EQ(p.grad().scalar_type(), at::kFloat);
}

TEST(SecureNoise, FixedKeySamplerIsNormalAndChunkIndependent) {
  // A fixed key makes the sampler itself checkable with a fixed seed.
  std::vector<double> x(100001);
  secure_standard_normal(key_from_seed(3), 0, x.data(),
                         static_cast<int64_t>(x.size()));
  const NormalTest t = test_normal(x, 1.0, 1e-3);
  EXPECT_TRUE(t.mean_ok && t.variance_ok && t.ks_ok);
  // Same key and stream, any thread count: same numbers.
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  std::vector<double> y(x.size());
  secure_standard_normal(key_from_seed(3), 0, y.data(),
                         static_cast<int64_t>(y.size()));
  at::set_num_threads(threads);
  EXPECT_EQ(x, y);
}

TEST(SeededNoise, SameSeedSameNoiseOtherSeedOther) {
  SeededNoise a(7);
  SeededNoise b(7);
  SeededNoise c(8);
  const at::Tensor x = a.standard_normal(1000);
  EXPECT_TRUE(at::equal(x, b.standard_normal(1000)));
  EXPECT_FALSE(at::equal(x, c.standard_normal(1000)));
  EXPECT_FALSE(at::equal(x, a.standard_normal(1000)));  // moves on
}

TEST(SeededNoise, StateRoundTripContinuesTheSameStream) {
  SeededNoise original(11);
  original.standard_normal(123);
  SeededNoise resumed(99);
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) { resumed.load(in); });
  EXPECT_TRUE(
      at::equal(resumed.standard_normal(500), original.standard_normal(500)));
}

TEST(SecureNoise, InstancesAndCallsDiffer) {
  SecureNoise a;
  SecureNoise b;
  const at::Tensor x = a.standard_normal(64);
  EXPECT_FALSE(at::equal(x, b.standard_normal(64)));
  EXPECT_FALSE(at::equal(x, a.standard_normal(64)));
  EXPECT_FALSE(a.reproducible());
}

TEST(SecureNoise, CheckpointHoldsNoKeyAndResumesFresh) {
  SecureNoise original;
  original.standard_normal(10);
  SecureNoise resumed;
  round_trip([&](auto& out) { original.save(out); },
             [&](auto& in) {
               EXPECT_EQ(in.keys(), std::vector<std::string>{"kind"});
               resumed.load(in);
             });
  EXPECT_FALSE(
      at::equal(resumed.standard_normal(64), original.standard_normal(64)));
}

TEST(NoiseGenerator, LoadRefusesTheOtherKind) {
  SeededNoise seeded(1);
  SecureNoise secure;
  EXPECT_EQ(error_of([&] {
              round_trip([&](auto& out) { seeded.save(out); },
                         [&](auto& in) { secure.load(in); });
            }),
            "noise generator checkpoint mismatch: kind is seeded in the "
            "checkpoint, secure here");
  EXPECT_EQ(error_of([&] {
              round_trip([&](auto& out) { secure.save(out); },
                         [&](auto& in) { seeded.load(in); });
            }),
            "noise generator checkpoint mismatch: kind is secure in the "
            "checkpoint, seeded here");
}

TEST(NoiseGenerator, RejectsNegativeCount) {
  SeededNoise seeded(1);
  EXPECT_EQ(error_of([&] { seeded.standard_normal(-1); }),
            "numel must be >= 0, got -1");
}

TEST(NoiseGenerator, DrawsFloatOrDoubleOnly) {
  SeededNoise seeded(1);
  SecureNoise secure;
  for (NoiseGenerator* g : std::vector<NoiseGenerator*>{&seeded, &secure}) {
    EXPECT_EQ(g->standard_normal(5, at::kFloat).scalar_type(), at::kFloat);
    EXPECT_EQ(g->standard_normal(5).scalar_type(), at::kDouble);
    EXPECT_EQ(error_of([&] { g->standard_normal(5, at::kHalf); }),
              "noise dtype must be float or double, got Half");
  }
}

TEST(FinalizeNoisyGradient, DividesByExpectedNotRealisedBatchSize) {
  // Three clipped examples summed to (6, 3); the configured B is 4.
  at::Tensor p = torch::zeros({2}, torch::kDouble).requires_grad_();
  p.mutable_grad() = torch::tensor({6.0, 3.0}, torch::kDouble);
  SeededNoise generator(0);
  finalize_noisy_gradient({p}, {0.0, 1.0, 4.0}, generator);
  EXPECT_TRUE(
      at::allclose(p.grad(), torch::tensor({1.5, 0.75}, torch::kDouble)));
}

TEST(FinalizeNoisyGradient, NoiseIsAddedBeforeTheDivision) {
  // grad 10 everywhere, σC = 2, B = 5: mean 2, std 2/5 per coordinate.
  at::Tensor p = torch::zeros({100000}, torch::kDouble).requires_grad_();
  p.mutable_grad() = torch::full({100000}, 10.0, torch::kDouble);
  SeededNoise generator(5);
  finalize_noisy_gradient({p}, {0.5, 4.0, 5.0}, generator);
  std::vector<double> centred = values_of(p.grad() - 2.0);
  const NormalTest t = test_normal(centred, 0.4, 1e-3);
  EXPECT_TRUE(t.mean_ok && t.variance_ok && t.ks_ok);
}

TEST(FinalizeNoisyGradient, EmptyBatchStillGetsNoiseOnEveryParameter) {
  // No example reached the model: grads are undefined, noise still goes in.
  at::Tensor w = torch::zeros({300, 100}).requires_grad_();
  at::Tensor b = torch::zeros({100}).requires_grad_();
  at::Tensor frozen = torch::zeros({50});
  SeededNoise generator(6);
  finalize_noisy_gradient({w, b, frozen}, {1.0, 1.0, 1.0}, generator);
  ASSERT_TRUE(w.grad().defined());
  ASSERT_TRUE(b.grad().defined());
  EXPECT_FALSE(frozen.grad().defined());
  EXPECT_EQ(w.grad().scalar_type(), torch::kFloat);
  EXPECT_EQ(w.grad().sizes(), w.sizes());
  const NormalTest tw = test_normal(values_of(w.grad()), 1.0, 1e-3);
  EXPECT_TRUE(tw.mean_ok && tw.variance_ok && tw.ks_ok);
  EXPECT_GT(b.grad().abs().min().item<float>(), 0.0F);
}

TEST(FinalizeNoisyGradient, RejectsBadOptions) {
  at::Tensor p = torch::zeros({2}).requires_grad_();
  SeededNoise g(0);
  EXPECT_EQ(error_of([&] {
              finalize_noisy_gradient({p}, {-1, 1, 1}, g);
            }),
            "noise_multiplier must be >= 0, got -1");
  EXPECT_EQ(error_of([&] {
              finalize_noisy_gradient({p}, {std::nan(""), 1, 1}, g);
            }),
            "noise_multiplier must be >= 0, got nan");
  EXPECT_EQ(error_of([&] {
              finalize_noisy_gradient({p}, {1, 0, 1}, g);
            }),
            "max_grad_norm must be > 0, got 0");
  EXPECT_EQ(error_of([&] {
              finalize_noisy_gradient({p}, {1, 1, -2}, g);
            }),
            "expected_batch_size must be > 0, got -2");
  EXPECT_EQ(error_of([&] { add_gaussian_noise({p}, -0.5, g); }),
            "noise_std must be >= 0, got -0.5");
  EXPECT_EQ(error_of([&] { divide_by_expected_batch_size({p}, 0); }),
            "expected_batch_size must be > 0, got 0");
  EXPECT_FALSE(p.grad().defined());  // nothing touched
}

// Throughput, for the report: `dp_tests --gtest_filter='*Slow*'`.
TEST(NoiseGeneratorSlow, CoordinatesPerSecond) {
  constexpr int64_t kN = 10'000'000;
  SeededNoise seeded(0);
  SecureNoise secure;
  for (NoiseGenerator* g : std::vector<NoiseGenerator*>{&seeded, &secure}) {
    g->standard_normal(kN / 10);  // warm up
    const auto start = std::chrono::steady_clock::now();
    const at::Tensor x = g->standard_normal(kN);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    std::printf("%s: %.3g coordinates/s (%d threads)\n", g->name().c_str(),
                kN / s, at::get_num_threads());
    EXPECT_EQ(x.numel(), kN);
  }
}

}  // namespace
}  // namespace dptrain::dp
