// v-prediction's preconditioning (the network's ideal target gives back the
// clean image, in closed form) and the training noise-level distributions
// (Kolmogorov–Smirnov against CDFs written here from their definitions).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "dptrain/models/diffusion.h"
#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::error_of;

constexpr double kPi = 3.14159265358979323846;

// --- v-prediction -----------------------------------------------------------

TEST(VPrediction, TheIdealTargetGivesBackTheCleanImage) {
  torch::manual_seed(3);
  for (const double sd : {0.5, 1.0}) {
    m::EdmOptions o;
    o.sigma_data = sd;
    o.parameterization = m::Parameterization::kV;
    const auto x = torch::randn({4, 1, 3, 3}, torch::kDouble) * sd;
    const auto n = torch::randn_like(x);
    const auto sigma = torch::tensor({0.01, 0.3, 2.0, 70.0}, torch::kDouble);
    const auto sv = sigma.view({-1, 1, 1, 1});
    // Salimans & Ho: α = σ_d/√(σ² + σ_d²), s = σ/√(σ² + σ_d²),
    // v = α·n − s·x/σ_d.
    const auto root = (sv * sv + sd * sd).sqrt();
    const auto alpha = sd / root, s = sv / root;
    const auto v = alpha * n - s * x / sd;
    const auto c = m::edm_scalings(sigma, o);
    const auto noisy = x + sv * n;
    const auto denoised =
        c.c_skip.view({-1, 1, 1, 1}) * noisy + c.c_out.view({-1, 1, 1, 1}) * v;
    EXPECT_LT((denoised - x).abs().max().item<double>(), 1e-12) << sd;
    // The network input is the VP-scaled image α·x/σ_d + s·n.
    EXPECT_LT((c.c_in.view({-1, 1, 1, 1}) * noisy - (alpha * x / sd + s * n))
                  .abs()
                  .max()
                  .item<double>(),
              1e-12);
    // λ·c_out² = 1: the weighted x-loss is the plain v-loss.
    EXPECT_LT((c.loss_weight * c.c_out.pow(2) - 1).abs().max().item<double>(),
              1e-12);
    // EDM's target is −v.
    m::EdmOptions edm = o;
    edm.parameterization = m::Parameterization::kEdm;
    const auto ce = m::edm_scalings(sigma, edm);
    const auto edm_denoised = ce.c_skip.view({-1, 1, 1, 1}) * noisy -
                              ce.c_out.view({-1, 1, 1, 1}) * v;
    EXPECT_LT((edm_denoised - x).abs().max().item<double>(), 1e-12);
  }
}

TEST(VPrediction, NoiseConditioningIsTheCosineScheduleTime) {
  m::EdmOptions o;
  o.sigma_data = 1.0;
  o.parameterization = m::Parameterization::kV;
  const std::vector<double> levels = {0.002, 0.5, 1.0, 80.0};
  const auto c =
      m::edm_scalings(torch::tensor(levels, torch::kDouble), o).c_noise;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    // DPDM's form: t = 2·arccos(1/√(1 + σ²))/π (arccos near 1 loses
    // ~1e-16/σ of this reference's precision at small σ).
    const double t =
        2.0 * std::acos(1.0 / std::sqrt(1.0 + levels[i] * levels[i])) / kPi;
    EXPECT_NEAR(c[static_cast<int64_t>(i)].item<double>(), t, 1e-12);
  }
  EXPECT_NEAR(c[2].item<double>(), 0.5, 1e-15);  // σ = σ_d: halfway
}

TEST(VPrediction, LossOfAnOffsetTargetIsThePlainSquaredOffset) {
  m::EdmOptions o;
  o.parameterization = m::Parameterization::kV;
  torch::manual_seed(4);
  const auto x = torch::randn({3, 1, 2, 2}, torch::kDouble) * 0.5;
  const auto noise = torch::randn_like(x);
  const auto sigma = torch::tensor({0.05, 1.0, 20.0}, torch::kDouble);
  const double offset = 0.25;
  // D of a network that outputs v + offset.
  const auto denoiser = [&](const at::Tensor& noisy, const at::Tensor& s) {
    const auto c = m::edm_scalings(s, o);
    const auto sv = s.view({-1, 1, 1, 1});
    const auto root = (sv * sv + o.sigma_data * o.sigma_data).sqrt();
    const auto v =
        (o.sigma_data * noise - sv * x / o.sigma_data) / root + offset;
    return c.c_skip.view({-1, 1, 1, 1}) * noisy +
           c.c_out.view({-1, 1, 1, 1}) * v;
  };
  const auto loss = m::edm_loss(denoiser, x, sigma, noise, o);
  EXPECT_LT((loss - offset * offset).abs().max().item<double>(), 1e-12);
}

// --- training noise distributions -------------------------------------------

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// Kolmogorov–Smirnov statistic of the draws against `cdf`.
double ks_statistic(const at::Tensor& draws,
                    const std::function<double(double)>& cdf) {
  const auto sorted = std::get<0>(draws.to(torch::kDouble).sort());
  const auto n = sorted.size(0);
  const auto* p = sorted.data_ptr<double>();
  double d = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double f = cdf(p[i]);
    d = std::max({d, f - static_cast<double>(i) / n,
                  static_cast<double>(i + 1) / n - f});
  }
  return d;
}

// The mixture's CDF, written from its definition.
double mixture_cdf(double sigma, const m::EdmOptions& o, double w) {
  const double ls = std::log(sigma);
  const double lo = std::log(o.train_sigma_min),
               hi = std::log(o.train_sigma_max);
  const double uniform = std::clamp((ls - lo) / (hi - lo), 0.0, 1.0);
  return (1 - w) * normal_cdf((ls - o.p_mean) / o.p_std) + w * uniform;
}

constexpr int64_t kDraws = 20000;
// KS critical value at α = 0.01: 1.63/√n.
const double kKsCritical = 1.63 / std::sqrt(static_cast<double>(kDraws));

TEST(TrainingSigmas, MixtureMatchesItsClosedFormCdf) {
  m::EdmOptions o;
  o.sigma_distribution = m::SigmaDistribution::kLogNormalLogUniformMix;
  o.high_noise_weight = 0.3;
  auto gen = at::detail::createCPUGenerator(21);
  const auto s = m::sample_training_sigmas(kDraws, o, gen, torch::kDouble);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{kDraws}));
  const double w = o.high_noise_weight;
  const double right =
      ks_statistic(s, [&](double x) { return mixture_cdf(x, o, w); });
  EXPECT_LT(right, kKsCritical);
  // Two-sided: 2/3 w, 3/2 w and the plain log-normal are rejected.
  for (const double wrong : {w * 2 / 3, w * 3 / 2, 0.0}) {
    EXPECT_GT(
        ks_statistic(s, [&](double x) { return mixture_cdf(x, o, wrong); }),
        kKsCritical)
        << wrong;
  }
  // It up-weights large noise levels: P(σ > 1) well above the log-normal's
  // 1 − Φ((0 − p_mean)/p_std) = 1 − Φ(1) ≈ 0.159.
  const double above = (s > 1.0).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(above,
              (1 - w) * (1 - normal_cdf(1.0)) +
                  w * std::log(80.0) / std::log(80.0 / 0.002),
              0.01);
  EXPECT_GT(above, 0.2);
}

TEST(TrainingSigmas, LogNormalMatchesItsClosedFormCdf) {
  m::EdmOptions o;
  auto gen = at::detail::createCPUGenerator(22);
  const auto s = m::sample_training_sigmas(kDraws, o, gen, torch::kFloat);
  EXPECT_EQ(s.scalar_type(), torch::kFloat);
  EXPECT_LT(ks_statistic(s, [&](double x) { return mixture_cdf(x, o, 0.0); }),
            kKsCritical);
}

TEST(TrainingSigmas, CosineMatchesItsClosedFormCdf) {
  m::EdmOptions o;
  o.sigma_data = 1.0;
  o.sigma_distribution = m::SigmaDistribution::kCosine;
  auto gen = at::detail::createCPUGenerator(23);
  const auto s = m::sample_training_sigmas(kDraws, o, gen, torch::kDouble);
  EXPECT_GE(s.min().item<double>(), o.train_sigma_min * (1 - 1e-12));
  EXPECT_LE(s.max().item<double>(), o.train_sigma_max * (1 + 1e-12));
  // σ = tan(π·t/2) with t uniform on [t(σ_min), t(σ_max)]:
  // F(σ) = (atan σ − atan σ_min)/(atan σ_max − atan σ_min).
  const double a = std::atan(o.train_sigma_min),
               b = std::atan(o.train_sigma_max);
  EXPECT_LT(
      ks_statistic(s, [&](double x) { return (std::atan(x) - a) / (b - a); }),
      kKsCritical);
  // Not the log-normal.
  EXPECT_GT(ks_statistic(s, [&](double x) { return mixture_cdf(x, o, 0.0); }),
            kKsCritical);
}

TEST(TrainingSigmas, RejectsBadDistributionOptions) {
  auto gen = at::detail::createCPUGenerator(0);
  auto message = [&](const std::function<void(m::EdmOptions&)>& change) {
    m::EdmOptions o;
    change(o);
    return error_of(
        [&] { m::sample_training_sigmas(4, o, gen, torch::kDouble); });
  };
  EXPECT_NE(message([](auto& o) {
              o.high_noise_weight = 1.5;
            }).find("high_noise_weight"),
            std::string::npos);
  EXPECT_NE(
      message([](auto& o) { o.train_sigma_min = 0; }).find("train_sigma_min"),
      std::string::npos);
  EXPECT_NE(message([](auto& o) {
              o.train_sigma_max = 0.001;
            }).find("train_sigma_max"),
            std::string::npos);
  EXPECT_NE(message([](auto& o) {
              o.sigma_distribution = static_cast<m::SigmaDistribution>(7);
            }).find("sigma_distribution"),
            std::string::npos);
  EXPECT_NE(message([](auto& o) {
              o.parameterization = static_cast<m::Parameterization>(7);
            }).find("parameterization"),
            std::string::npos);
}

}  // namespace
