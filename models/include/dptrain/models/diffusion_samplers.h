#pragma once
/// Samplers beside heun_sample (diffusion.h): EDM's stochastic sampler and
/// DDIM, both on the σ schedule of HeunOptions (Karras et al. 2022, eq. 5)
/// and any Denoiser D(x; σ).
///
/// DDIM (Song et al. 2021, η = 0) in σ-space. With x = x̄/√ᾱ for the VP
/// image x̄ and σ = √((1−ᾱ)/ᾱ), DDIM's step
///   x̄_next = √ᾱ_next·x̂_0 + √(1−ᾱ_next)·ε̂,  ε̂ = (x − x̂_0)/σ,
/// divided by √ᾱ_next is x_next = D + σ_next·(x − D)/σ with D = x̂_0, i.e.
///   x_next = x + (σ_next − σ)·(x − D(x; σ))/σ,
/// exactly one Euler step of the probability-flow ODE dx/dσ = (x − D)/σ
/// (Karras et al. 2022, Section 3). So ddim_sample is Euler on that ODE: one
/// denoiser call per step, first order.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <limits>

#include "dptrain/models/diffusion.h"

namespace dptrain::models {

/// EDM's stochastic sampler (Karras et al. 2022, Algorithm 2).
struct StochasticSamplerOptions {
  HeunOptions schedule;  ///< the σ levels t_0 > … > t_{N−1} > t_N = 0
  /// Total churn: γ_i = min(s_churn/N, √2 − 1) at levels in [s_tmin, s_tmax],
  /// 0 elsewhere. s_churn = 0 is heun_sample exactly.
  double s_churn = 0.0;
  double s_tmin = 0.0;  ///< lowest level that gets fresh noise
  double s_tmax = std::numeric_limits<double>::infinity();  ///< highest
  double s_noise = 1.0;  ///< std of the fresh noise ε (slightly > 1 in EDM)
  /// Throws std::invalid_argument naming the field unless the schedule is
  /// valid, s_churn ≥ 0 (finite), 0 ≤ s_tmin ≤ s_tmax (s_tmax may be +∞)
  /// and s_noise > 0 (finite).
  void validate() const;
};

/// Algorithm 2: from x_0 = t_0·z (z = `initial_noise`, [N, C, H, W],
/// standard normal), at each level t_i: t̂ = (1 + γ_i)·t_i,
/// x̂ = x_i + √(t̂² − t_i²)·ε with ε ~ N(0, s_noise²) (drawn only where
/// γ_i > 0), then one Heun step from t̂ to t_{i+1} (Euler on the last one to
/// 0). ε is drawn from `generator` on the generator's device in x's dtype and
/// moved to x's device, so a CPU generator gives the same draws on any device
/// and a CUDA generator draws on the GPU. The same generator state gives the
/// same samples. Throws std::invalid_argument for bad options, an
/// initial_noise that is not 4-D, or an undefined generator.
at::Tensor stochastic_sample(const Denoiser& denoiser,
                             const at::Tensor& initial_noise,
                             const StochasticSamplerOptions& options,
                             at::Generator generator);

/// DDIM (η = 0) = Euler on the probability-flow ODE (the header comment).
struct DdimOptions {
  HeunOptions schedule;  ///< the σ levels; `steps` denoiser calls in all
  /// Throws std::invalid_argument naming the field of the schedule.
  void validate() const;
};

/// From t_0·z (z = `initial_noise`), x ← x + (t_{i+1} − t_i)·(x − D(x;
/// t_i))/t_i down the schedule to t_N = 0. Deterministic.
at::Tensor ddim_sample(const Denoiser& denoiser,
                       const at::Tensor& initial_noise,
                       const DdimOptions& options);

}  // namespace dptrain::models
