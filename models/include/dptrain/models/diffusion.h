#pragma once
/// EDM (Karras et al. 2022) preconditioning, training loss and Heun sampler
/// for the diffusion UNet, as DPDM (Dockhorn et al. 2023) trains it:
///   D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ), label)
///   c_skip = σ_d²/(σ²+σ_d²), c_out = σ·σ_d/√(σ²+σ_d²),
///   c_in = 1/√(σ²+σ_d²), c_noise = ln(σ)/4,
///   loss(x) = λ(σ)·mean((D(x + σ·n; σ) − x)²), λ = (σ²+σ_d²)/(σ·σ_d)²,
///   ln σ ~ N(p_mean, p_std²) during training.
/// v-prediction (Parameterization::kV, after Salimans & Ho 2022 in the
/// σ-space of EDM; DPDM's "v" runs at small ε use it with σ_d = 1):
///   write α = σ_d/√(σ²+σ_d²), s = σ/√(σ²+σ_d²) (α² + s² = 1). The network
///   input is z = c_in·x_σ = α·(x/σ_d) + s·n, the VP-scaled noisy image, and
///   its target is v = α·n − s·(x/σ_d), so x/σ_d = α·z − s·v and
///     c_skip = σ_d²/(σ²+σ_d²), c_in = 1/√(σ²+σ_d²),
///     c_out = −σ·σ_d/√(σ²+σ_d²)   (the sign: F predicts v, not −v),
///     c_noise = (2/π)·atan(σ/σ_d)  (the cosine schedule's time t ∈ (0, 1)),
///     λ = (σ²+σ_d²)/(σ·σ_d)²       (so λ·|D − x|² = |F − v|²).
///   In σ-space this differs from EDM only in c_noise and the sign of F's
///   target (EDM's F is trained towards −v); with σ_d = 1 these are DPDM's
///   VDenoiser/VLoss formulas except that DPDM's network predicts −v. What
///   DPDM's v runs change besides is σ_d = 1 and the noise distribution
///   (SigmaDistribution::kCosine, uniform in the cosine schedule's time).
/// Noise multiplicity K (DPDM: each example's loss is the mean over K
/// independent (σ, n) draws, taken before clipping) is the engine's group of
/// K rows: repeat each example K times and give every row its own draw.

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "dptrain/models/unet.h"

namespace dptrain::models {

/// What the network F is trained to predict (the preconditioning above).
enum class Parameterization {
  kEdm,  ///< Karras et al. 2022, Table 1 "ours" (the default)
  kV,    ///< v-prediction in σ-space (formulas above)
};

/// The training distribution of σ (sample_training_sigmas).
enum class SigmaDistribution {
  /// ln σ ~ N(p_mean, p_std²) (EDM, DPDM). The default.
  kLogNormal,
  /// Up-weights large noise levels (after Ghalebikesabi et al. 2023's
  /// "modified timestep sampling", whose exact form is not public; this is
  /// our choice): with probability w = high_noise_weight ln σ is uniform on
  /// [ln σ_min, ln σ_max] (train_sigma_min/max), otherwise log-normal as
  /// kLogNormal. CDF:
  ///   F(σ) = (1−w)·Φ((ln σ − p_mean)/p_std)
  ///        + w·clamp((ln σ − ln σ_min)/(ln σ_max − ln σ_min), 0, 1).
  kLogNormalLogUniformMix,
  /// DPDM's v-runs: t ~ U[t(σ_min), t(σ_max)] with t(σ) = (2/π)·atan(σ/σ_d),
  /// σ = σ_d·tan(π·t/2) (uniform time of the cosine schedule). CDF:
  ///   F(σ) = (atan(σ/σ_d) − atan(σ_min/σ_d)) /
  ///          (atan(σ_max/σ_d) − atan(σ_min/σ_d)) on [σ_min, σ_max].
  kCosine,
};

struct EdmOptions {
  double sigma_data = 0.5;  ///< σ_d, the data's standard deviation
  double p_mean = -1.2;     ///< training: mean of ln σ
  double p_std = 1.2;       ///< training: std of ln σ
  Parameterization parameterization = Parameterization::kEdm;
  SigmaDistribution sigma_distribution = SigmaDistribution::kLogNormal;
  /// kLogNormalLogUniformMix: the weight w ∈ [0, 1] of the log-uniform part.
  double high_noise_weight = 0.2;
  /// Range of the log-uniform part (kLogNormalLogUniformMix) and of kCosine.
  double train_sigma_min = 0.002;
  double train_sigma_max = 80.0;
  /// Throws std::invalid_argument naming the field unless σ_d > 0,
  /// p_std > 0, 0 ≤ high_noise_weight ≤ 1 and
  /// 0 < train_sigma_min < train_sigma_max (all finite).
  void validate() const;
};

/// The preconditioning coefficients at each σ ([N] tensors, σ > 0) of
/// options.parameterization.
struct EdmScalings {
  at::Tensor c_skip, c_out, c_in, c_noise, loss_weight;
};
EdmScalings edm_scalings(const at::Tensor& sigma, const EdmOptions& options);

/// A denoiser D(x; σ) for images x [N, C, H, W] at noise levels σ [N].
using Denoiser =
    std::function<at::Tensor(const at::Tensor& x, const at::Tensor& sigma)>;

/// D(x; σ) of `net` for `labels` [N] (net->null_class() = unconditional).
at::Tensor edm_denoise(UNet& net, const at::Tensor& x, const at::Tensor& sigma,
                       const at::Tensor& labels, const EdmOptions& options);

/// Per-row EDM losses [N] of clean images x [N, C, H, W] at σ [N] with noise
/// n (x's shape): λ(σ)·mean over pixels of (D(x + σ·n; σ) − x)².
at::Tensor edm_loss(const Denoiser& denoiser, const at::Tensor& x,
                    const at::Tensor& sigma, const at::Tensor& noise,
                    const EdmOptions& options);

/// Training noise levels: N draws from options.sigma_distribution (the
/// default kLogNormal: σ = exp(p_mean + p_std·z), z standard normal), drawn
/// in float64 on the CPU from `generator` (a CPU generator), then converted
/// to `tensor_options`.
at::Tensor sample_training_sigmas(int64_t n, const EdmOptions& options,
                                  at::Generator generator,
                                  const at::TensorOptions& tensor_options);

struct HeunOptions {
  int64_t steps = 18;        ///< noise levels before 0 (N); ≥ 1
  double sigma_min = 0.002;  ///< the last non-zero level
  double sigma_max = 80.0;   ///< the first level
  double rho = 7.0;          ///< spacing exponent of the schedule
  /// Throws std::invalid_argument naming the field unless steps ≥ 1 and
  /// 0 < sigma_min < sigma_max, rho > 0.
  void validate() const;
};

/// σ_0 > … > σ_{N−1} (Karras et al. eq. 5), then σ_N = 0: steps + 1 values.
std::vector<double> heun_schedule(const HeunOptions& options);

/// EDM's deterministic 2nd-order sampler (Algorithm 1): starts from
/// σ_0·z, z = `initial_noise` ([N, C, H, W], standard normal), and runs the
/// Heun steps down the schedule (Euler on the last step to σ = 0).
at::Tensor heun_sample(const Denoiser& denoiser,
                       const at::Tensor& initial_noise,
                       const HeunOptions& options);

/// Classifier-free guidance: (1 + w)·D(x; σ, label) − w·D(x; σ, null). w = 0
/// is the conditional model alone.
Denoiser guided_denoiser(UNet& net, const at::Tensor& labels, double guidance,
                         const EdmOptions& options);

}  // namespace dptrain::models
