#pragma once

// The Gaussian mechanism of a private step: once per logical step, after all
// physical chunks have accumulated Σᵢ clip(gᵢ) into .grad, each coordinate
// gets N(0, σ²C²) and the sum is divided by the configured expected batch
// size — a public constant, never the realised batch size (which would leak
// the batch size and change the sensitivity).

#include <ATen/core/Tensor.h>

#include <vector>

#include "dptrain/dp/mechanism/noise_generator.h"

namespace dptrain::dp {

/// The public constants of the Gaussian mechanism.
struct NoiseOptions {
  /// σ: noise standard deviation in units of max_grad_norm. 0 means no noise
  /// and no privacy (the accountant reports ε = ∞); must be >= 0.
  double noise_multiplier = 0;
  /// C: the L2 bound of each example's contribution; must be > 0.
  double max_grad_norm = 0;
  /// B = q·N: the configured expected logical batch size; must be > 0.
  double expected_batch_size = 0;

  /// σ·C, the standard deviation of each noise coordinate before division.
  double noise_std() const { return noise_multiplier * max_grad_norm; }
};

/// Throws std::invalid_argument naming the field and value unless
/// noise_multiplier >= 0, max_grad_norm > 0 and expected_batch_size > 0 (all
/// finite).
void validate(const NoiseOptions& options);

/// Adds N(0, noise_std²) to every coordinate of the .grad of each parameter
/// that requires grad, in the order given. A missing .grad (a parameter that
/// saw no example, e.g. an empty batch) is first set to zeros: it gets noise
/// too. Parameters that do not require grad are left alone. Works for grads
/// on any device and of any floating dtype. When generator.round_once() (the
/// secure generator), the draws are double and grad + noise_std·z is computed
/// in double and rounded once into the gradient's dtype. Throws
/// std::invalid_argument if noise_std is negative or not finite.
void add_gaussian_noise(const std::vector<at::Tensor>& parameters,
                        double noise_std, NoiseGenerator& generator);

/// Divides the .grad of each parameter that requires grad by
/// expected_batch_size (missing grads are set to zeros). Throws
/// std::invalid_argument unless expected_batch_size is finite and > 0.
void divide_by_expected_batch_size(const std::vector<at::Tensor>& parameters,
                                   double expected_batch_size);

/// validate(options), add_gaussian_noise(σ·C), then
/// divide_by_expected_batch_size(B): the whole mechanism of one logical step.
void finalize_noisy_gradient(const std::vector<at::Tensor>& parameters,
                             const NoiseOptions& options,
                             NoiseGenerator& generator);

}  // namespace dptrain::dp
