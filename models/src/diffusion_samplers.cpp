#include "dptrain/models/diffusion_samplers.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "option_errors.h"

namespace dptrain::models {
namespace {

void check_noise(const at::Tensor& initial_noise, const char* who) {
  if (!initial_noise.defined() || initial_noise.dim() != 4) {
    throw std::invalid_argument(std::string(who) +
                                ": initial_noise [N, C, H, W] expected");
  }
}

}  // namespace

void StochasticSamplerOptions::validate() const {
  schedule.validate();
  if (!std::isfinite(s_churn) || s_churn < 0) {
    detail::bad_value("stochastic sampler s_churn must be finite and >= 0",
                      s_churn);
  }
  if (!std::isfinite(s_tmin) || s_tmin < 0) {
    detail::bad_value("stochastic sampler s_tmin must be finite and >= 0",
                      s_tmin);
  }
  if (std::isnan(s_tmax) || s_tmax < s_tmin) {
    detail::bad_value("stochastic sampler s_tmax must be >= s_tmin", s_tmax);
  }
  if (!std::isfinite(s_noise) || s_noise <= 0) {
    detail::bad_value("stochastic sampler s_noise must be finite and > 0",
                      s_noise);
  }
}

at::Tensor stochastic_sample(const Denoiser& denoiser,
                             const at::Tensor& initial_noise,
                             const StochasticSamplerOptions& options,
                             at::Generator generator) {
  options.validate();
  check_noise(initial_noise, "stochastic_sample");
  if (!generator.defined()) {
    throw std::invalid_argument("stochastic_sample: generator is undefined");
  }
  const auto sigmas = heun_schedule(options.schedule);
  torch::NoGradGuard no_grad;
  const int64_t n = initial_noise.size(0);
  auto level = [&](double s) {
    return torch::full({n}, s, initial_noise.options());
  };
  const double gamma_max =
      std::min(options.s_churn / static_cast<double>(options.schedule.steps),
               std::sqrt(2.0) - 1.0);
  auto x = initial_noise * sigmas.front();
  for (std::size_t i = 0; i + 1 < sigmas.size(); ++i) {
    const double t = sigmas[i], next = sigmas[i + 1];
    const bool churn =
        gamma_max > 0 && t >= options.s_tmin && t <= options.s_tmax;
    double s = t;  // t̂
    if (churn) {
      s = t + gamma_max * t;
      const auto eps =
          at::empty(x.sizes(), x.options().device(generator.device()))
              .normal_(0.0, options.s_noise, generator)
              .to(x.device());
      x = x + std::sqrt(s * s - t * t) * eps;
    }
    // The Heun step from t̂, written as heun_sample's so that no churn gives
    // its result bit for bit.
    const auto d = (x - denoiser(x, level(s))) / s;
    auto x_next = x + (next - s) * d;
    if (next > 0) {
      const auto d_next = (x_next - denoiser(x_next, level(next))) / next;
      x_next = x + (next - s) * 0.5 * (d + d_next);
    }
    x = x_next;
  }
  return x;
}

void DdimOptions::validate() const { schedule.validate(); }

at::Tensor ddim_sample(const Denoiser& denoiser,
                       const at::Tensor& initial_noise,
                       const DdimOptions& options) {
  options.validate();
  check_noise(initial_noise, "ddim_sample");
  const auto sigmas = heun_schedule(options.schedule);
  torch::NoGradGuard no_grad;
  const int64_t n = initial_noise.size(0);
  auto x = initial_noise * sigmas.front();
  for (std::size_t i = 0; i + 1 < sigmas.size(); ++i) {
    const double s = sigmas[i], next = sigmas[i + 1];
    const auto denoised = denoiser(x, torch::full({n}, s, x.options()));
    x = x + (next - s) * ((x - denoised) / s);
  }
  return x;
}

}  // namespace dptrain::models
