#pragma once
/// Activation functions of the image models, including the "scaled"
/// activations of normaliser-free networks (Brock et al. 2021): f(x)·γ with
/// γ chosen so that f(z)·γ has unit variance for z ~ N(0, 1).

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace dptrain::models {

/// γ constants, as in the NFNet / JAX Privacy sources (empirical estimates
/// of 1/std(f(z)), z ~ N(0, 1)).
inline constexpr double kScaledReluGamma = 1.7139588594436646;
inline constexpr double kScaledGeluGamma = 1.7015043497085571;
inline constexpr double kScaledSiluGamma = 1.7881293296813965;
inline constexpr double kScaledTanhGamma = 1.5939117670059204;

/// Which nonlinearity. GELU is the tanh approximation (jax.nn.gelu default).
enum class Activation {
  kIdentity,
  kRelu,
  kGelu,
  kSilu,
  kTanh,
  kScaledRelu,  ///< relu(x) · kScaledReluGamma
  kScaledGelu,  ///< gelu(x) · kScaledGeluGamma
  kScaledSilu,  ///< silu(x) · kScaledSiluGamma
  kScaledTanh,  ///< tanh(x) · kScaledTanhGamma
};

/// f(x), elementwise, same shape and dtype.
at::Tensor activate(const at::Tensor& x, Activation activation);

/// The exact (erf) GELU, with a hook that makes its output gradient
/// contiguous before the backward: LibTorch 1.13's CPU kernel for that
/// backward is wrong for a non-contiguous gradient (off by O(1) in float32,
/// NaN in bf16), as autocast or a transpose after the GELU can send it (the
/// tanh approximation is not affected; LibTorch 2.6 gets it right).
at::Tensor gelu_exact(const at::Tensor& x);

/// Name as accepted by parse_activation: "relu", "scaled_gelu", ...
std::string to_string(Activation activation);
/// Inverse of to_string; throws std::invalid_argument listing the names.
Activation parse_activation(const std::string& name);
/// Every activation's name.
std::vector<std::string> activation_names();

}  // namespace dptrain::models
