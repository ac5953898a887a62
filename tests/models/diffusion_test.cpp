// EDM preconditioning, loss and the Heun sampler. The sampler is checked
// against the exact denoiser of Gaussian data: for x ~ N(0, s²) per pixel,
// E[x | x + σn] = (x + σn)·s²/(s² + σ²), so following it from σ_max down to
// 0 must end with pixels of standard deviation s.
#include "dptrain/models/diffusion.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::error_of;

TEST(Edm, ScalingsAtSigmaDataAreTheClosedForms) {
  m::EdmOptions o;
  o.sigma_data = 0.5;
  const auto c = m::edm_scalings(torch::tensor({0.5}, torch::kDouble), o);
  // σ = σ_d: c_skip = 1/2, c_out = σ_d/√2, c_in = 1/(σ_d√2), λ = 2/σ_d².
  EXPECT_DOUBLE_EQ(c.c_skip.item<double>(), 0.5);
  EXPECT_DOUBLE_EQ(c.c_out.item<double>(), 0.5 / std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(c.c_in.item<double>(), 1.0 / (0.5 * std::sqrt(2.0)));
  EXPECT_DOUBLE_EQ(c.c_noise.item<double>(), std::log(0.5) / 4.0);
  EXPECT_DOUBLE_EQ(c.loss_weight.item<double>(), 8.0);
}

TEST(Edm, LossIsWeightedMeanSquaredDenoisingError) {
  m::EdmOptions o;
  torch::manual_seed(0);
  const auto x = torch::randn({3, 1, 2, 2}, torch::kDouble);
  const auto sigma = torch::tensor({0.1, 1.0, 10.0}, torch::kDouble);
  const auto noise = torch::randn_like(x);
  const auto perfect = [&](const at::Tensor&, const at::Tensor&) { return x; };
  EXPECT_TRUE(torch::equal(m::edm_loss(perfect, x, sigma, noise, o),
                           torch::zeros({3}, torch::kDouble)));
  const auto zero = [](const at::Tensor& y, const at::Tensor&) {
    return torch::zeros_like(y);
  };
  const auto loss = m::edm_loss(zero, x, sigma, noise, o);
  for (int64_t i = 0; i < 3; ++i) {
    const double s = sigma[i].item<double>(), sd = o.sigma_data;
    const double weight = (s * s + sd * sd) / (s * s * sd * sd);
    EXPECT_NEAR(loss[i].item<double>(),
                weight * x[i].pow(2).mean().item<double>(), 1e-12);
  }
}

TEST(Edm, TrainingSigmasAreLogNormal) {
  m::EdmOptions o;
  auto gen = at::detail::createCPUGenerator(5);
  const auto s = m::sample_training_sigmas(20000, o, gen, torch::kDouble);
  const auto logs = s.log();
  EXPECT_NEAR(logs.mean().item<double>(), o.p_mean, 0.05);
  EXPECT_NEAR(logs.std().item<double>(), o.p_std, 0.05);
}

TEST(Heun, ScheduleRunsFromSigmaMaxToSigmaMinThenZero) {
  m::HeunOptions o;
  o.steps = 5;
  const auto s = m::heun_schedule(o);
  ASSERT_EQ(s.size(), 6U);
  EXPECT_NEAR(s.front(), 80.0, 1e-9);
  EXPECT_NEAR(s[4], 0.002, 1e-12);
  EXPECT_EQ(s.back(), 0.0);
  for (std::size_t i = 0; i + 1 < s.size(); ++i) EXPECT_GT(s[i], s[i + 1]);
  // Karras et al. eq. 5 at i = 2 of N = 5 (t = 1/2), by hand.
  const double mid =
      std::pow(0.5 * (std::pow(80.0, 1 / 7.0) + std::pow(0.002, 1 / 7.0)), 7.0);
  EXPECT_NEAR(s[2], mid, 1e-9);
  o.sigma_min = 100;
  EXPECT_NE(error_of([&] { m::heun_schedule(o); }).find("sigma_max"),
            std::string::npos);
}

TEST(Heun, TheExactDenoiserOfGaussianDataSamplesThatGaussian) {
  const double s_data = 0.7;
  const auto exact = [s_data](const at::Tensor& x, const at::Tensor& sigma) {
    const auto s2 = sigma.pow(2).view({-1, 1, 1, 1});
    return x * (s_data * s_data) / (s_data * s_data + s2);
  };
  auto gen = at::detail::createCPUGenerator(11);
  const auto z =
      at::empty({256, 1, 8, 8}, torch::kDouble).normal_(0.0, 1.0, gen);
  // The flow is linear here: x_final = c·z, and the exact ODE gives
  // c = σ_max·s/√(s² + σ_max²). Heun is second order: the error of c falls
  // about 4× when the steps double.
  const double exact_c = 80.0 * s_data / std::sqrt(s_data * s_data + 6400.0);
  auto error_at = [&](int64_t steps) {
    m::HeunOptions o;
    o.steps = steps;
    const auto x = m::heun_sample(exact, z, o);
    const auto c = x / z;
    EXPECT_LT((c - c.mean()).abs().max().item<double>(), 1e-9);
    return c.mean().item<double>() / exact_c - 1.0;
  };
  const double e64 = error_at(64), e128 = error_at(128);
  EXPECT_LT(std::abs(e64), 5e-3);
  EXPECT_LT(std::abs(e128), 1.2e-3);
  EXPECT_GT(e64 / e128, 3.0);
  EXPECT_LT(e64 / e128, 5.0);
  // So the samples are that Gaussian: std s (16384 pixels, SE ≈ 0.6 %).
  m::HeunOptions o;
  o.steps = 128;
  const auto x = m::heun_sample(exact, z, o);
  EXPECT_NEAR(x.std().item<double>(), s_data, 0.025 * s_data);
  // Deterministic: the same noise gives the same samples.
  EXPECT_TRUE(torch::equal(m::heun_sample(exact, z, o), x));
}

TEST(Edm, GuidedDenoiserOfTheUNetIsDeterministicAndUsesTheNullClass) {
  torch::manual_seed(2);
  m::UNetConfig c = m::unet_config("unet-small");
  m::UNet net(c);
  net->eval();
  m::EdmOptions o;
  const auto labels = torch::tensor({int64_t{1}, int64_t{4}});
  m::HeunOptions h;
  h.steps = 3;
  auto gen = at::detail::createCPUGenerator(3);
  const auto z = at::empty({2, 1, 28, 28}).normal_(0.0, 1.0, gen);
  const auto a = m::heun_sample(m::guided_denoiser(net, labels, 0.0, o), z, h);
  const auto b = m::heun_sample(m::guided_denoiser(net, labels, 0.0, o), z, h);
  const auto g = m::heun_sample(m::guided_denoiser(net, labels, 2.0, o), z, h);
  EXPECT_EQ(a.sizes(), z.sizes());
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::allclose(a, g)) << "guidance changed nothing";
  EXPECT_NE(error_of([&] {
              m::guided_denoiser(net, labels, -1.0, o);
            }).find("guidance"),
            std::string::npos);
}

}  // namespace
