// The stochastic EDM sampler and DDIM, checked against the exact denoiser of
// Gaussian data (x ~ N(0, s²) per pixel: D(x; σ) = x·s²/(s² + σ²)), whose
// probability-flow ODE has the closed-form solution
// x(σ) = x(σ0)·√((s² + σ²)/(s² + σ0²)).
#include "dptrain/models/diffusion_samplers.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::error_of;

constexpr double kSData = 0.7;

at::Tensor exact_gaussian_denoiser(const at::Tensor& x,
                                   const at::Tensor& sigma) {
  const auto s2 = sigma.pow(2).view({-1, 1, 1, 1});
  return x * (kSData * kSData) / (kSData * kSData + s2);
}

at::Tensor standard_normal(std::vector<int64_t> shape, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return at::empty(shape, torch::kDouble).normal_(0.0, 1.0, gen);
}

// x(0) of the exact flow from σ_max·z: z·σ_max·s/√(s² + σ_max²).
double exact_flow_factor(double sigma_max) {
  return sigma_max * kSData /
         std::sqrt(kSData * kSData + sigma_max * sigma_max);
}

TEST(StochasticSampler, NoChurnIsHeunBitForBit) {
  const auto z = standard_normal({4, 1, 5, 5}, 1);
  m::StochasticSamplerOptions o;
  o.schedule.steps = 12;
  auto gen = at::detail::createCPUGenerator(3);
  const auto heun = m::heun_sample(exact_gaussian_denoiser, z, o.schedule);
  EXPECT_TRUE(torch::equal(
      m::stochastic_sample(exact_gaussian_denoiser, z, o, gen), heun));
  // Churn outside [s_tmin, s_tmax] of every level is no churn either.
  o.s_churn = 40;
  o.s_tmin = 100;
  o.s_tmax = 200;
  EXPECT_TRUE(torch::equal(
      m::stochastic_sample(exact_gaussian_denoiser, z, o, gen), heun));
}

TEST(StochasticSampler, ChurnSamplesTheGaussian) {
  // Fresh noise at t̂ keeps the exact marginal N(0, s² + t̂²), so with enough
  // steps the samples have std s (16384 pixels: SE of the std ≈ 0.55 %).
  // The discretisation bias of the std, propagated by hand through the
  // linear steps, is +1.9 % at 64 steps and +0.19 % at 256.
  const auto z = standard_normal({256, 1, 8, 8}, 7);
  m::StochasticSamplerOptions o;
  o.schedule.steps = 256;
  o.s_churn = 40;
  o.s_tmin = 0.05;
  o.s_tmax = 50;
  o.s_noise = 1.0;
  auto gen = at::detail::createCPUGenerator(9);
  const auto x = m::stochastic_sample(exact_gaussian_denoiser, z, o, gen);
  const double sd = x.std().item<double>();
  EXPECT_NEAR(sd, kSData, 0.02 * kSData);
  EXPECT_NEAR(x.mean().item<double>(), 0.0, 0.02);
  // Two-sided: 2/3 s and 3/2 s are far outside that band.
  EXPECT_GT(std::abs(sd - kSData * 2 / 3), 0.1);
  EXPECT_GT(std::abs(sd - kSData * 3 / 2), 0.1);
  // And it is not the deterministic path: the churn moved the samples.
  const auto heun = m::heun_sample(exact_gaussian_denoiser, z, o.schedule);
  EXPECT_GT((x - heun).abs().mean().item<double>(), 0.05);
  // Under the deterministic flow x = c·z exactly; churn breaks that.
  const auto ratio = x / z;
  EXPECT_GT(ratio.std().item<double>(), 0.05);
}

TEST(StochasticSampler, SameSeedSameSamplesOtherSeedDiffers) {
  const auto z = standard_normal({3, 1, 4, 4}, 2);
  m::StochasticSamplerOptions o;
  o.schedule.steps = 8;
  o.s_churn = 10;
  auto a = at::detail::createCPUGenerator(5);
  auto b = at::detail::createCPUGenerator(5);
  auto c = at::detail::createCPUGenerator(6);
  const auto xa = m::stochastic_sample(exact_gaussian_denoiser, z, o, a);
  const auto xb = m::stochastic_sample(exact_gaussian_denoiser, z, o, b);
  const auto xc = m::stochastic_sample(exact_gaussian_denoiser, z, o, c);
  EXPECT_TRUE(torch::equal(xa, xb));
  EXPECT_GT((xa - xc).abs().max().item<double>(), 1e-3);
  // Float32 images draw float32 noise and stay float32.
  auto d = at::detail::createCPUGenerator(5);
  const auto x32 =
      m::stochastic_sample(exact_gaussian_denoiser, z.to(torch::kFloat), o, d);
  EXPECT_EQ(x32.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::isfinite(x32).all().item<bool>());
}

TEST(StochasticSampler, RejectsBadOptionsNamingTheField) {
  const auto z = standard_normal({1, 1, 2, 2}, 0);
  auto gen = at::detail::createCPUGenerator(0);
  auto message =
      [&](const std::function<void(m::StochasticSamplerOptions&)>& change) {
        m::StochasticSamplerOptions o;
        change(o);
        return error_of(
            [&] { m::stochastic_sample(exact_gaussian_denoiser, z, o, gen); });
      };
  EXPECT_NE(message([](auto& o) { o.s_churn = -1; }).find("s_churn"),
            std::string::npos);
  EXPECT_NE(message([](auto& o) { o.s_tmin = -0.1; }).find("s_tmin"),
            std::string::npos);
  EXPECT_NE(message([](auto& o) {
              o.s_tmin = 2;
              o.s_tmax = 1;
            }).find("s_tmax"),
            std::string::npos);
  EXPECT_NE(message([](auto& o) { o.s_noise = 0; }).find("s_noise"),
            std::string::npos);
  EXPECT_NE(message([](auto& o) { o.schedule.steps = 0; }).find("steps"),
            std::string::npos);
  m::StochasticSamplerOptions ok;
  EXPECT_NE(error_of([&] {
              m::stochastic_sample(exact_gaussian_denoiser,
                                   torch::zeros({2, 2}), ok, gen);
            }).find("initial_noise"),
            std::string::npos);
}

TEST(StochasticSampler, RunsTheGuidedUNetDeterministically) {
  torch::manual_seed(5);
  m::UNet net(m::unet_config("unet-small"));
  net->eval();
  const auto labels = torch::tensor({int64_t{0}, int64_t{7}});
  const auto denoiser = m::guided_denoiser(net, labels, 1.0, m::EdmOptions{});
  auto z_gen = at::detail::createCPUGenerator(1);
  const auto z = at::empty({2, 1, 28, 28}).normal_(0.0, 1.0, z_gen);
  m::StochasticSamplerOptions o;
  o.schedule.steps = 3;
  o.s_churn = 5;
  auto a = at::detail::createCPUGenerator(2);
  auto b = at::detail::createCPUGenerator(2);
  const auto xa = m::stochastic_sample(denoiser, z, o, a);
  EXPECT_EQ(xa.sizes(), z.sizes());
  EXPECT_TRUE(torch::isfinite(xa).all().item<bool>());
  EXPECT_TRUE(torch::equal(xa, m::stochastic_sample(denoiser, z, o, b)));
  m::DdimOptions d;
  d.schedule.steps = 3;
  const auto xd = m::ddim_sample(denoiser, z, d);
  EXPECT_EQ(xd.sizes(), z.sizes());
  EXPECT_TRUE(torch::equal(xd, m::ddim_sample(denoiser, z, d)));
  EXPECT_NE(error_of([&] {
              m::stochastic_sample(denoiser, z, o, at::Generator());
            }).find("generator"),
            std::string::npos);
}

TEST(Ddim, OneStepIsEulerOnTheFlow) {
  // One step from σ_max to 0: x + (0 − σ)(x − D)/σ = D(σ_max·z; σ_max).
  const auto z = standard_normal({2, 1, 3, 3}, 4);
  m::DdimOptions o;
  o.schedule.steps = 1;
  const auto x = m::ddim_sample(exact_gaussian_denoiser, z, o);
  const double s = 80.0;
  const auto expected = z * s * kSData * kSData / (kSData * kSData + s * s);
  EXPECT_LT((x - expected).abs().max().item<double>(), 1e-14);
  // Two steps: the Euler update at the middle level, by hand.
  o.schedule.steps = 2;
  const auto sig = m::heun_schedule(o.schedule);  // {80, 0.002, 0}
  double c = sig[0];
  for (int i = 0; i < 2; ++i) {
    const double d = sig[i] * sig[i] / (kSData * kSData + sig[i] * sig[i]);
    c = c + (sig[i + 1] - sig[i]) * c * d / sig[i];
  }
  EXPECT_LT((m::ddim_sample(exact_gaussian_denoiser, z, o) - c * z)
                .abs()
                .max()
                .item<double>(),
            1e-12);
}

TEST(Ddim, ConvergesToTheExactOdeSolutionAtFirstOrder) {
  const auto z = standard_normal({256, 1, 8, 8}, 11);
  const double exact_c = exact_flow_factor(80.0);
  auto error_at = [&](int64_t steps) {
    m::DdimOptions o;
    o.schedule.steps = steps;
    const auto c = m::ddim_sample(exact_gaussian_denoiser, z, o) / z;
    EXPECT_LT((c - c.mean()).abs().max().item<double>(), 1e-9);
    return c.mean().item<double>() / exact_c - 1.0;
  };
  const double e128 = error_at(128), e256 = error_at(256),
               e2048 = error_at(2048);
  // First order: the error halves when the steps double.
  EXPECT_GT(e128 / e256, 1.7);
  EXPECT_LT(e128 / e256, 2.3);
  EXPECT_LT(std::abs(e2048), 0.2 * std::abs(e128));
  EXPECT_LT(std::abs(e2048), 2e-3);
  m::DdimOptions o;
  o.schedule.steps = 2048;
  const auto x = m::ddim_sample(exact_gaussian_denoiser, z, o);
  EXPECT_NEAR(x.std().item<double>(), kSData, 0.02 * kSData);
  EXPECT_TRUE(torch::equal(m::ddim_sample(exact_gaussian_denoiser, z, o), x));
  m::DdimOptions bad;
  bad.schedule.rho = 0;
  EXPECT_NE(error_of([&] {
              m::ddim_sample(exact_gaussian_denoiser, z, bad);
            }).find("rho"),
            std::string::npos);
}

}  // namespace
