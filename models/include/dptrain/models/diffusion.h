#pragma once
/// EDM (Karras et al. 2022) preconditioning, training loss and Heun sampler
/// for the diffusion UNet, as DPDM (Dockhorn et al. 2023) trains it:
///   D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x; c_noise(σ), label)
///   c_skip = σ_d²/(σ²+σ_d²), c_out = σ·σ_d/√(σ²+σ_d²),
///   c_in = 1/√(σ²+σ_d²), c_noise = ln(σ)/4,
///   loss(x) = λ(σ)·mean((D(x + σ·n; σ) − x)²), λ = (σ²+σ_d²)/(σ·σ_d)²,
///   ln σ ~ N(p_mean, p_std²) during training.
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

struct EdmOptions {
  double sigma_data = 0.5;  ///< σ_d, the data's standard deviation
  double p_mean = -1.2;     ///< training: mean of ln σ
  double p_std = 1.2;       ///< training: std of ln σ
  /// Throws std::invalid_argument naming the field unless σ_d > 0 and
  /// p_std > 0 (all finite).
  void validate() const;
};

/// The preconditioning coefficients at each σ ([N] tensors, σ > 0).
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

/// Training noise levels: N draws of σ = exp(p_mean + p_std·z).
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
