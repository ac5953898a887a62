#include "dptrain/models/diffusion.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "option_errors.h"

namespace dptrain::models {
namespace {

constexpr double kPi = 3.14159265358979323846;

at::Tensor per_image(const at::Tensor& v) {  // [N] → [N, 1, 1, 1]
  return v.view({-1, 1, 1, 1});
}

}  // namespace

void EdmOptions::validate() const {
  if (!std::isfinite(sigma_data) || sigma_data <= 0) {
    detail::bad_value("EDM sigma_data must be finite and > 0", sigma_data);
  }
  if (!std::isfinite(p_mean))
    detail::bad_value("EDM p_mean must be finite", p_mean);
  if (!std::isfinite(p_std) || p_std <= 0) {
    detail::bad_value("EDM p_std must be finite and > 0", p_std);
  }
  if (!(high_noise_weight >= 0 && high_noise_weight <= 1)) {
    detail::bad_value("EDM high_noise_weight must be in [0, 1]",
                      high_noise_weight);
  }
  if (!std::isfinite(train_sigma_min) || train_sigma_min <= 0) {
    detail::bad_value("EDM train_sigma_min must be finite and > 0",
                      train_sigma_min);
  }
  if (!std::isfinite(train_sigma_max) || !(train_sigma_max > train_sigma_min)) {
    detail::bad_value(
        "EDM train_sigma_max must be finite and > train_sigma_min",
        train_sigma_max);
  }
  if (parameterization != Parameterization::kEdm &&
      parameterization != Parameterization::kV) {
    detail::bad_value("EDM parameterization is not a known value",
                      static_cast<double>(parameterization));
  }
  if (sigma_distribution != SigmaDistribution::kLogNormal &&
      sigma_distribution != SigmaDistribution::kLogNormalLogUniformMix &&
      sigma_distribution != SigmaDistribution::kCosine) {
    detail::bad_value("EDM sigma_distribution is not a known value",
                      static_cast<double>(sigma_distribution));
  }
}

EdmScalings edm_scalings(const at::Tensor& sigma, const EdmOptions& o) {
  o.validate();
  const double sd2 = o.sigma_data * o.sigma_data;
  const auto s2 = sigma * sigma;
  EdmScalings c;
  c.c_skip = sd2 / (s2 + sd2);
  c.c_out = sigma * o.sigma_data / (s2 + sd2).sqrt();
  c.c_in = 1.0 / (s2 + sd2).sqrt();
  c.c_noise = sigma.log() / 4.0;
  c.loss_weight = (s2 + sd2) / (s2 * sd2);
  if (o.parameterization == Parameterization::kV) {
    c.c_out = -c.c_out;  // F's target is v = α·n − s·x/σ_d, EDM's is −v
    c.c_noise = (sigma / o.sigma_data).atan() * (2.0 / kPi);
  }
  return c;
}

at::Tensor edm_denoise(UNet& net, const at::Tensor& x, const at::Tensor& sigma,
                       const at::Tensor& labels, const EdmOptions& options) {
  const auto c = edm_scalings(sigma, options);
  const auto f = net->forward(per_image(c.c_in) * x, c.c_noise, labels);
  return per_image(c.c_skip) * x + per_image(c.c_out) * f;
}

at::Tensor edm_loss(const Denoiser& denoiser, const at::Tensor& x,
                    const at::Tensor& sigma, const at::Tensor& noise,
                    const EdmOptions& options) {
  if (x.dim() != 4 || noise.sizes() != x.sizes() || sigma.dim() != 1 ||
      sigma.size(0) != x.size(0)) {
    throw std::invalid_argument(
        "edm_loss: x [N, C, H, W], noise of x's shape and sigma [N] expected");
  }
  const auto c = edm_scalings(sigma, options);
  const auto denoised = denoiser(x + per_image(sigma) * noise, sigma);
  return c.loss_weight * (denoised - x).pow(2).flatten(1).mean(1);
}

at::Tensor sample_training_sigmas(int64_t n, const EdmOptions& options,
                                  at::Generator generator,
                                  const at::TensorOptions& tensor_options) {
  options.validate();
  if (n < 0) {
    detail::bad_value("sample_training_sigmas: n must be >= 0",
                      static_cast<double>(n));
  }
  const auto cpu = tensor_options.dtype(at::kDouble).device(at::kCPU);
  const double lo = std::log(options.train_sigma_min);
  const double hi = std::log(options.train_sigma_max);
  switch (options.sigma_distribution) {
    case SigmaDistribution::kLogNormal: {
      auto z = at::empty({n}, cpu).normal_(0.0, 1.0, generator);
      return (options.p_mean + options.p_std * z).exp().to(tensor_options);
    }
    case SigmaDistribution::kLogNormalLogUniformMix: {
      // All three draws are made for every σ, in a fixed order (normal,
      // uniform, choice), so the generator's use does not depend on w.
      auto z = at::empty({n}, cpu).normal_(0.0, 1.0, generator);
      auto u = at::empty({n}, cpu).uniform_(0.0, 1.0, generator);
      auto pick = at::empty({n}, cpu).uniform_(0.0, 1.0, generator);
      const auto log_normal = options.p_mean + options.p_std * z;
      const auto log_uniform = lo + (hi - lo) * u;
      return at::where(pick < options.high_noise_weight, log_uniform,
                       log_normal)
          .exp()
          .to(tensor_options);
    }
    case SigmaDistribution::kCosine: {
      const double sd = options.sigma_data;
      const double t_lo = std::atan(options.train_sigma_min / sd);
      const double t_hi = std::atan(options.train_sigma_max / sd);
      auto u = at::empty({n}, cpu).uniform_(0.0, 1.0, generator);
      return ((t_lo + (t_hi - t_lo) * u).tan() * sd).to(tensor_options);
    }
  }
  detail::bad_value("EDM sigma_distribution is not a known value",
                    static_cast<double>(options.sigma_distribution));
}

void HeunOptions::validate() const {
  if (steps < 1)
    detail::bad_value("Heun steps must be >= 1", static_cast<double>(steps));
  if (!(sigma_min > 0) || !std::isfinite(sigma_min)) {
    detail::bad_value("Heun sigma_min must be finite and > 0", sigma_min);
  }
  if (!(sigma_max > sigma_min) || !std::isfinite(sigma_max)) {
    detail::bad_value("Heun sigma_max must be finite and > sigma_min",
                      sigma_max);
  }
  if (!(rho > 0) || !std::isfinite(rho))
    detail::bad_value("Heun rho must be > 0", rho);
}

std::vector<double> heun_schedule(const HeunOptions& o) {
  o.validate();
  std::vector<double> sigmas;
  const double a = std::pow(o.sigma_max, 1.0 / o.rho);
  const double b = std::pow(o.sigma_min, 1.0 / o.rho);
  for (int64_t i = 0; i < o.steps; ++i) {
    const double t =
        o.steps == 1 ? 0.0 : static_cast<double>(i) / (o.steps - 1);
    sigmas.push_back(std::pow(a + t * (b - a), o.rho));
  }
  sigmas.push_back(0.0);
  return sigmas;
}

at::Tensor heun_sample(const Denoiser& denoiser,
                       const at::Tensor& initial_noise,
                       const HeunOptions& options) {
  const auto sigmas = heun_schedule(options);
  torch::NoGradGuard no_grad;
  const int64_t n = initial_noise.size(0);
  auto level = [&](double s) {
    return torch::full({n}, s, initial_noise.options());
  };
  auto x = initial_noise * sigmas.front();
  for (std::size_t i = 0; i + 1 < sigmas.size(); ++i) {
    const double s = sigmas[i], next = sigmas[i + 1];
    const auto d = (x - denoiser(x, level(s))) / s;
    auto x_next = x + (next - s) * d;
    if (next > 0) {  // the 2nd-order correction
      const auto d_next = (x_next - denoiser(x_next, level(next))) / next;
      x_next = x + (next - s) * 0.5 * (d + d_next);
    }
    x = x_next;
  }
  return x;
}

Denoiser guided_denoiser(UNet& net, const at::Tensor& labels, double guidance,
                         const EdmOptions& options) {
  if (!std::isfinite(guidance) || guidance < 0) {
    detail::bad_value("guidance must be finite and >= 0", guidance);
  }
  // The holder is copied: it shares the module and outlives the caller's.
  return [net, labels, guidance, options](const at::Tensor& x,
                                          const at::Tensor& sigma) mutable {
    const auto conditional = edm_denoise(net, x, sigma, labels, options);
    if (guidance == 0) return conditional;
    const auto unconditional = edm_denoise(
        net, x, sigma, torch::full_like(labels, net->null_class()), options);
    return (1.0 + guidance) * conditional - guidance * unconditional;
  };
}

}  // namespace dptrain::models
