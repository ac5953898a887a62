#pragma once
/// Clipping options and the result of one clipped accumulation.

#include <ATen/core/Tensor.h>
#include <torch/arg.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace dptrain::dp {

/// Which norm is clipped.
enum class ClipMode {
  /// One norm over all trainable parameters; clip factor
  /// c_i = min(1, C / (‖g_i‖ + 1e-6)).
  kFlat,
  /// One threshold per layer, C_l = C / √L for L layers (so Σ C_l² = C²);
  /// c_il = min(1, C_l / (‖g_il‖ + 1e-6)). Layers sharing a parameter count
  /// as one layer. L is fixed when the engine is built.
  kPerLayer,
};

/// Added to the norm in every clip factor (as Opacus) so that a zero
/// gradient gives factor 1 and no division by zero.
inline constexpr double kClipNormEpsilon = 1e-6;

/// How per-example gradients are clipped. Sensitivity of the resulting sum:
/// C (or 1 with normalize) per example added or removed.
struct ClippingOptions {
  /// Throws std::invalid_argument unless max_grad_norm is finite and > 0.
  /* implicit */ ClippingOptions(double max_grad_norm);  // NOLINT
  /// C, the bound on each example's L2 norm.
  TORCH_ARG(double, max_grad_norm);
  TORCH_ARG(ClipMode, mode) = ClipMode::kFlat;
  /// De et al. 2022 / JAX Privacy `rescale_to_unit_norm`: each clipped
  /// gradient is divided by C, i.e. c_i = min(1, C/(‖g_i‖+1e-6)) / C, so every
  /// contribution has norm ≤ 1 and the noise must be σ·1 (sensitivity 1).
  TORCH_ARG(bool, normalize) = false;
  /// Compute ClipDiagnostics. They are NOT differentially private.
  TORCH_ARG(bool, diagnostics) = false;

 public:
  /// The bound on one example's contribution to the clipped sum: C, or 1
  /// with normalize. ClipResult::sensitivity carries it.
  double sensitivity() const { return normalize() ? 1.0 : max_grad_norm(); }
};

/// NOT PRIVATE: statistics of the un-noised per-example norms. For debugging
/// and tests only; never log or publish them as part of a private release.
struct ClipDiagnostics {
  /// Each example's gradient norm (of the mean over its K rows), [B] in
  /// flat mode, [B, L] per layer; float64 on the CPU.
  at::Tensor norms;
  /// Fraction of examples whose gradient was scaled down (any layer).
  double fraction_clipped = 0.0;
  /// Quantiles 0, .25, .5, .75, 1 of the total (all-layer) norms; empty if B=0.
  std::vector<double> norm_quantiles;
};

/// What one clipped accumulation did.
struct ClipResult {
  int64_t batch_size = 0;    ///< B, examples (groups of K rows)
  int64_t group_size = 1;    ///< K
  double sensitivity = 0.0;  ///< bound on one example's contribution: C, or 1
  /// Present only if ClippingOptions::diagnostics. NOT PRIVATE.
  std::optional<ClipDiagnostics> diagnostics;
};

namespace detail {
/// Clip factors from norms [B] or [B, L] and per-layer thresholds; applies
/// normalize. Returns factors of the same shape.
at::Tensor clip_factors(const at::Tensor& norms, const ClippingOptions& options,
                        int64_t num_layers);
/// Fills diagnostics from norms ([B] or [B, L]) and factors.
ClipDiagnostics make_diagnostics(const at::Tensor& norms,
                                 const at::Tensor& factors,
                                 const ClippingOptions& options);
/// What a clipped accumulation of `batch_size` examples reports: its
/// sensitivity, and the diagnostics when options ask for them.
ClipResult make_clip_result(int64_t batch_size, int64_t group_size,
                            const at::Tensor& norms, const at::Tensor& factors,
                            const ClippingOptions& options);
}  // namespace detail

}  // namespace dptrain::dp
