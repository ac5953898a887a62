#include "dptrain/dp/clipping/clipping.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace dptrain::dp {

ClippingOptions::ClippingOptions(double max_grad_norm)
    : max_grad_norm_(max_grad_norm) {
  if (!(max_grad_norm > 0.0) || !std::isfinite(max_grad_norm)) {
    throw std::invalid_argument("max_grad_norm must be finite and > 0, got " +
                                std::to_string(max_grad_norm));
  }
}

namespace detail {

torch::Tensor clip_factors(const torch::Tensor& norms,
                           const ClippingOptions& options, int64_t num_layers) {
  const double c = options.max_grad_norm();
  if (!(c > 0.0) || !std::isfinite(c)) {
    throw std::invalid_argument("max_grad_norm must be finite and > 0, got " +
                                std::to_string(c));
  }
  const double threshold = options.mode() == ClipMode::kFlat
                               ? c
                               : c / std::sqrt(static_cast<double>(
                                         std::max<int64_t>(num_layers, 1)));
  auto factors = torch::clamp_max(threshold / (norms + kClipNormEpsilon), 1.0);
  if (options.normalize()) factors = factors / c;
  return factors;
}

ClipDiagnostics make_diagnostics(const torch::Tensor& norms,
                                 const torch::Tensor& factors,
                                 const ClippingOptions& options) {
  ClipDiagnostics d;
  d.norms = norms.to(torch::kCPU, torch::kDouble);
  auto scaled = factors.to(torch::kCPU, torch::kDouble);
  if (options.normalize()) scaled = scaled * options.max_grad_norm();
  auto clipped = scaled < 1.0;
  auto total = d.norms;
  if (d.norms.dim() == 2) {
    clipped = clipped.any(1);
    total = d.norms.pow(2).sum(1).sqrt();
  }
  const int64_t b = total.size(0);
  if (b == 0) return d;
  d.fraction_clipped = clipped.to(torch::kDouble).mean().item<double>();
  auto sorted = std::get<0>(total.sort());
  auto acc = sorted.accessor<double, 1>();
  for (double q : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    const double pos = q * static_cast<double>(b - 1);
    const auto lo = static_cast<int64_t>(std::floor(pos));
    const int64_t hi = std::min<int64_t>(lo + 1, b - 1);
    const double frac = pos - static_cast<double>(lo);
    d.norm_quantiles.push_back(acc[lo] * (1.0 - frac) + acc[hi] * frac);
  }
  return d;
}

ClipResult make_clip_result(int64_t batch_size, int64_t group_size,
                            const at::Tensor& norms, const at::Tensor& factors,
                            const ClippingOptions& options) {
  ClipResult result;
  result.batch_size = batch_size;
  result.group_size = group_size;
  result.sensitivity = options.sensitivity();
  if (options.diagnostics()) {
    result.diagnostics = make_diagnostics(norms, factors, options);
  }
  return result;
}

}  // namespace detail
}  // namespace dptrain::dp
