#include "dptrain/dp/mechanism/noise.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "dptrain/dp/archive/archive_io.h"

namespace dptrain::dp {
namespace {

// .grad of a trainable parameter, created as zeros when missing.
at::Tensor& grad_of(const at::Tensor& parameter) {
  at::Tensor& grad = parameter.mutable_grad();
  if (!grad.defined()) grad = at::zeros_like(parameter);
  return grad;
}

// g[i] ← round(g[i] + σC·z[i]) with the sum in double, i < n: one pass
// over a contiguous CPU float or double gradient.
template <typename T>
void add_in_double(T* g, const double* z, int64_t n, double noise_std) {
  at::parallel_for(0, n, int64_t{1} << 15, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double scaled = noise_std * z[i];
      g[i] = static_cast<T>(static_cast<double>(g[i]) + scaled);
    }
  });
}

// Coordinates a hardened draw hands over per block (8 MiB of doubles).
constexpr int64_t kNoiseBlock = int64_t{1} << 20;

}  // namespace

void validate(const NoiseOptions& options) {
  if (!(std::isfinite(options.noise_multiplier) &&
        options.noise_multiplier >= 0)) {
    throw std::invalid_argument("noise_multiplier must be >= 0, got " +
                                detail::short_text(options.noise_multiplier));
  }
  if (!(std::isfinite(options.max_grad_norm) && options.max_grad_norm > 0)) {
    throw std::invalid_argument("max_grad_norm must be > 0, got " +
                                detail::short_text(options.max_grad_norm));
  }
  if (!(std::isfinite(options.expected_batch_size) &&
        options.expected_batch_size > 0)) {
    throw std::invalid_argument(
        "expected_batch_size must be > 0, got " +
        detail::short_text(options.expected_batch_size));
  }
}

void add_gaussian_noise(const std::vector<at::Tensor>& parameters,
                        double noise_std, NoiseGenerator& generator) {
  if (!(std::isfinite(noise_std) && noise_std >= 0)) {
    throw std::invalid_argument("noise_std must be >= 0, got " +
                                detail::short_text(noise_std));
  }
  torch::NoGradGuard no_grad;
  // A hardened generator's draw is scaled and added in double and rounded
  // once (privacy invariant 2). Otherwise (seeded noise, not for release)
  // draw in float unless a parameter is double: float draws and adds are
  // several times cheaper.
  const bool round_once = generator.round_once();
  int64_t total = 0;
  at::ScalarType draw = round_once ? at::kDouble : at::kFloat;
  for (const at::Tensor& p : parameters) {
    if (!p.requires_grad()) continue;
    total += p.numel();
    if (p.scalar_type() == at::kDouble) draw = at::kDouble;
  }
  // A hardened draw onto contiguous CPU float/double gradients (every
  // parameter's): block by block, each block added in one pass, so that no
  // tensor of `total` doubles is made (or mapped and zeroed) per step.
  std::vector<at::Tensor> grads;
  bool blocked = round_once;
  for (const at::Tensor& p : parameters) {
    if (!p.requires_grad()) continue;
    at::Tensor& grad = grad_of(p);
    blocked =
        blocked && grad.device().is_cpu() && grad.is_contiguous() &&
        (grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble);
    grads.push_back(grad);
  }
  if (blocked) {
    // The parameters in order, each its slice of the one draw.
    size_t k = 0;
    int64_t k_first = 0;  // first coordinate of grads[k]
    generator.standard_normal_blocks(
        total, kNoiseBlock,
        [&](int64_t offset, const double* z, int64_t count) {
          const int64_t end = offset + count;
          while (offset < end) {
            while (k_first + grads[k].numel() <= offset) {
              k_first += grads[k].numel();
              ++k;
            }
            at::Tensor& grad = grads[k];
            const int64_t from = offset - k_first;
            const int64_t n = std::min(end, k_first + grad.numel()) - offset;
            if (grad.scalar_type() == at::kFloat) {
              add_in_double(grad.data_ptr<float>() + from, z, n, noise_std);
            } else {
              add_in_double(grad.data_ptr<double>() + from, z, n, noise_std);
            }
            z += n;
            offset += n;
          }
        });
    return;
  }
  // One draw for all parameters: fewer, larger calls parallelise better.
  const at::Tensor noise = generator.standard_normal(total, draw);
  if (noise.scalar_type() != draw || noise.numel() != total) {
    throw std::logic_error(
        "NoiseGenerator::standard_normal returned the wrong "
        "dtype or size");
  }
  int64_t offset = 0;
  for (at::Tensor& grad : grads) {
    const at::Tensor slice =
        noise.narrow(0, offset, grad.numel()).view(grad.sizes());
    offset += grad.numel();
    if (round_once) {
      // g + σC·z exactly in double, then one rounding into the gradient.
      at::Tensor sum = grad.to(at::kDouble, /*non_blocking=*/false,
                               /*copy=*/true);
      sum.add_(slice.to(sum.device()), noise_std);
      grad.copy_(sum);
    } else {
      // Cast on the CPU, then move: fewer bytes cross to an accelerator.
      grad.add_(slice.to(grad.scalar_type()).to(grad.device()), noise_std);
    }
  }
}

void divide_by_expected_batch_size(const std::vector<at::Tensor>& parameters,
                                   double expected_batch_size) {
  if (!(std::isfinite(expected_batch_size) && expected_batch_size > 0)) {
    throw std::invalid_argument("expected_batch_size must be > 0, got " +
                                detail::short_text(expected_batch_size));
  }
  torch::NoGradGuard no_grad;
  for (const at::Tensor& p : parameters) {
    if (p.requires_grad()) grad_of(p).div_(expected_batch_size);
  }
}

void finalize_noisy_gradient(const std::vector<at::Tensor>& parameters,
                             const NoiseOptions& options,
                             NoiseGenerator& generator) {
  validate(options);
  add_gaussian_noise(parameters, options.noise_std(), generator);
  divide_by_expected_batch_size(parameters, options.expected_batch_size);
}

}  // namespace dptrain::dp
