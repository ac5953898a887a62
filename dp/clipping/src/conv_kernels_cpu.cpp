// Fused CPU kernels for WSConv2d (see conv_kernels_cpu.h). Built with
// -fopenmp (dp/clipping/CMakeLists.txt): the `#pragma omp simd` reductions
// vectorise, and at::parallel_for spreads the output channels over
// LibTorch's threads (without OpenMP it would run them on one).
#include "conv_kernels_cpu.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace dptrain::dp::detail {
namespace {

// fused_ws_norms sums x in blocks of kNormBlock elements in x's dtype (so
// the reduction vectorises) and the block sums in double: the float
// partial sums stay short. Chosen with the kernels (benchmarks/RESULTS.md,
// "Image models": [4, 768, 1536] kept dŴ, norms 10.4 → 4.6 ms); no sweep
// over the block size is recorded.
constexpr int64_t kNormBlock = 512;
// at::parallel_for over output channels gets at least this many elements
// of work per chunk (grain = kGrainElements / work per channel). No
// measurement is recorded for it.
constexpr int64_t kGrainElements = int64_t{1} << 15;

// Mean μ, s = √max(Σ(w − μ)², eps) and active = [Σ(w − μ)² ≥ eps] of one
// output channel's fan-in w[0..n): the standardisation of WSConv2dImpl.
template <typename T>
void channel_stats(const T* w, int64_t n, double eps, double& mu, double& s,
                   double& active) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(w[i]);
  mu = sum / static_cast<double>(n);
  const double m = mu;
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(w[i]) - m;
    ss += d * d;
  }
  s = std::sqrt(std::max(ss, eps));
  active = ss >= eps ? 1.0 : 0.0;
}

// Per example b and channel o: contrib[b, o] = (gain_o/s_o)²·max(0, ‖x‖² −
// (Σx)²/n − active·(x·c)²/s²) and d_gain[b, o] = x·c/s (see ws_norms).
template <typename T>
void fused_ws_norms_t(const torch::Tensor& x, const WSConv2dImpl& layer,
                      torch::Tensor& contrib, torch::Tensor& d_gain) {
  const auto w = layer.weight.contiguous();
  const auto gain = layer.gain.contiguous();
  const int64_t batch = x.size(0);
  const int64_t out = w.size(0);
  const int64_t n = w[0].numel();
  const double eps = layer.options.eps();
  contrib = torch::empty({batch, out}, x.options().dtype(torch::kDouble));
  d_gain = torch::empty({batch, out}, x.options());
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  const T* gp = gain.data_ptr<T>();
  double* cp = contrib.data_ptr<double>();
  T* dp = d_gain.data_ptr<T>();
  const int64_t grain = std::max<int64_t>(1, kGrainElements / n);
  at::parallel_for(0, out, grain, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const T* wr = wp + o * n;
      double mu, s, active;
      channel_stats(wr, n, eps, mu, s, active);
      const double scale = std::pow(static_cast<double>(gp[o]) / s, 2);
      for (int64_t b = 0; b < batch; ++b) {
        const T* xr = xp + (b * out + o) * n;
        // Blocks of kNormBlock summed in T (vectorised), the block sums in
        // double.
        double q = 0, t = 0, dsum = 0;
        const T muf = static_cast<T>(mu);
        for (int64_t i0 = 0; i0 < n; i0 += kNormBlock) {
          const int64_t m = std::min<int64_t>(kNormBlock, n - i0);
          T sq_block = 0, sx_block = 0, dot_block = 0;
          const T* xb = xr + i0;
          const T* wb = wr + i0;
#pragma omp simd reduction(+ : sq_block, sx_block, dot_block)
          for (int64_t j = 0; j < m; ++j) {
            const T xi = xb[j];
            sq_block += xi * xi;
            sx_block += xi;
            dot_block += xi * (wb[j] - muf);
          }
          q += sq_block;
          t += sx_block;
          dsum += dot_block;
        }
        const double d = dsum / s;
        const double proj = q - t * t / static_cast<double>(n) - active * d * d;
        cp[b * out + o] = scale * std::max(proj, 0.0);
        dp[b * out + o] = static_cast<T>(d);
      }
    }
  });
}

// Σ_b f_b·x_b mapped through the standardisation backward (ws_backward of the
// weighted sum, which is linear in dŴ): d_w [out, ...] and d_gain [out, 1, 1,
// 1] for factors f [B] (double).
template <typename T>
void fused_ws_weighted_sum_t(const torch::Tensor& x, const torch::Tensor& f,
                             const WSConv2dImpl& layer, torch::Tensor& d_w,
                             torch::Tensor& d_gain) {
  const auto w = layer.weight.contiguous();
  const auto gain = layer.gain.contiguous();
  const auto factors = f.to(torch::kDouble).contiguous();
  const int64_t batch = x.size(0);
  const int64_t out = w.size(0);
  const int64_t n = w[0].numel();
  const double eps = layer.options.eps();
  d_w = torch::empty_like(w);
  d_gain = torch::empty({out, 1, 1, 1}, w.options());
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  const T* gp = gain.data_ptr<T>();
  const double* fp = factors.data_ptr<double>();
  T* op = d_w.data_ptr<T>();
  T* gop = d_gain.data_ptr<T>();
  const int64_t grain = std::max<int64_t>(1, kGrainElements / (n * batch));
  at::parallel_for(0, out, grain, [&](int64_t begin, int64_t end) {
    std::vector<double> y(static_cast<size_t>(n));
    for (int64_t o = begin; o < end; ++o) {
      const T* wr = wp + o * n;
      double mu, s, active;
      channel_stats(wr, n, eps, mu, s, active);
      std::fill(y.begin(), y.end(), 0.0);
      for (int64_t b = 0; b < batch; ++b) {
        const T* xr = xp + (b * out + o) * n;
        const double fb = fp[b];
        for (int64_t i = 0; i < n; ++i) y[i] += fb * static_cast<double>(xr[i]);
      }
      double sum = 0, dot = 0;
      const double* yp = y.data();
#pragma omp simd reduction(+ : sum, dot)
      for (int64_t i = 0; i < n; ++i) {
        sum += yp[i];
        dot += yp[i] * (static_cast<double>(wr[i]) - mu);
      }
      const double g = static_cast<double>(gp[o]);
      const double mean = sum / static_cast<double>(n);
      const double a = g / s;
      const double k = g * active * dot / (s * s * s);
      T* orow = op + o * n;
      for (int64_t i = 0; i < n; ++i) {
        orow[i] = static_cast<T>(a * (y[i] - mean) -
                                 k * (static_cast<double>(wr[i]) - mu));
      }
      gop[o] = static_cast<T>(dot / s);
    }
  });
}

}  // namespace

bool fused_ws_applicable(const torch::Tensor& x, const WSConv2dImpl& layer) {
  return x.device().is_cpu() && layer.weight.device().is_cpu() &&
         x.scalar_type() == layer.weight.scalar_type() &&
         (x.scalar_type() == torch::kFloat ||
          x.scalar_type() == torch::kDouble);
}

void fused_ws_norms(const torch::Tensor& x, const WSConv2dImpl& layer,
                    torch::Tensor& contrib, torch::Tensor& d_gain) {
  const auto xc = x.contiguous();
  if (x.scalar_type() == torch::kFloat) {
    fused_ws_norms_t<float>(xc, layer, contrib, d_gain);
  } else {
    fused_ws_norms_t<double>(xc, layer, contrib, d_gain);
  }
}

void fused_ws_weighted_sum(const torch::Tensor& x, const torch::Tensor& f,
                           const WSConv2dImpl& layer, torch::Tensor& d_w,
                           torch::Tensor& d_gain) {
  const auto xc = x.contiguous();
  if (x.scalar_type() == torch::kFloat) {
    fused_ws_weighted_sum_t<float>(xc, f, layer, d_w, d_gain);
  } else {
    fused_ws_weighted_sum_t<double>(xc, f, layer, d_w, d_gain);
  }
}

}  // namespace dptrain::dp::detail
