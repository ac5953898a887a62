// Rules for Conv1d, Conv2d and WSConv2d. Per example, with T output
// positions (times the group size K), d_in = in/groups · kernel area:
//  - materialised: per-example weight gradients [B, out, in/groups, k...]
//    from ONE grouped convolution_backward (groups = B·groups, batch = K),
//    which oneDNN runs several times faster than unfold + bmm on CPU
//    (../shared/MEASURED.md); cost ≈ B·T·d_in·out FLOPs, memory B·|W|.
//    A 1×1 kernel with no padding and one group may instead take one
//    convolution_backward per example or one bmm (pointwise_route): on
//    NFNet-F0's 1×1 layers at B = 4 the grouped convolution_backward took
//    1.3–3× the batch weight gradient's time, those 1.1–2.3×.
//  - ghost (Conv1d/Conv2d, groups = 1): unfold, then Σ_ts (a_t·a_s)(g_t·g_s);
//    cost B·T²·(d_in+out) FLOPs plus the unfold copy, memory B·T².
//    Chosen iff 2·T·(d_in+out) < d_in·out (the 2 charges for the unfold).
//  - weighted sum: from kept per-example gradients (a [B]×[B, |W|] product)
//    if B·|W| ≤ kMaxKeptElements, else one batch weight gradient with G
//    scaled per row (the non-private weight gradient's cost).
// WSConv2d: the norms of the gradients of W and gain follow from three
// reductions over the per-example gradient x = dŴ, because the
// standardisation backward is, per output channel, a scaled orthogonal
// projection (ws_norms). Two routes give those reductions:
//  - grouped: x materialised by the grouped convolution_backward; x is kept
//    (LayerCall::rule_state) when B·|W| ≤ kMaxKeptElements, and the weighted
//    sum is then Σ cᵢxᵢ (a [B]×[B, |W|] product) mapped once through
//    ws_backward; otherwise one batch weight gradient, then ws_backward.
//    On CPU both steps on kept x are fused loops (fused_ws_norms,
//    fused_ws_weighted_sum): one sweep over x each.
//  - ghost (groups = 1; ws_ghost_norms): Σ_o w_o‖x_o‖² from the Gram of the
//    padded input's PIXELS (the patch Gram is the sum of k^D shifted blocks
//    of it, no unfold) and the Gram of G with columns scaled by √w_o; the
//    two projection terms Σx_o and x_o·c_o from one extra convolution of the
//    input with c (and of its channel sum with a kernel of ones; not one
//    convolution with out+1 channels: oneDNN runs that 12% slower). The
//    weighted sum is one batch weight gradient, then ws_backward.
//  Cost model (multiply-adds per example; t = K·T, p = K·padded pixels,
//  T_row = positions per row): grouped = t·d_in·out·f, f = max(1,
//  256/T_row) (1 + 48/T_row for pointwise layers)
//  (+ t·d_in·out for the weighted sum unless x is kept); ghost = p²·in +
//  t²·out + t·d_in·(out+1) + t·d_in·out (pixel Gram, G Gram, the two
//  convolutions, the weighted sum). The factor max(1, 256/T_row) is measured:
//  the grouped convolution_backward runs 3–8× slower than the batch weight
//  gradient of equal FLOPs on 8×8 maps (T_row = 64) and at par from 16×16
//  (WRN-16-4 profile, benchmarks/RESULTS.md). Ghost is chosen iff it is the
//  cheaper and B·p², B·t² ≤ kMaxKeptElements. WRN-16-4: ghost on the 8×8
//  stage (6× fewer multiply-adds there), grouped (kept) elsewhere.
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "builtin_rules.h"
#include "dptrain/dp/layers/conv.h"

namespace dptrain::dp::detail {
namespace {

constexpr int64_t kMaxKeptElements = int64_t{1} << 25;

// Backward of Ŵ = gain·(W − μ)·rsqrt(max(n·var, eps)) for a batch of
// cotangents dŴ [B, out, ...]: returns {dW [B, out, ...], dgain [B,
// out,1,1,1]}.
std::pair<torch::Tensor, torch::Tensor> ws_backward(const torch::Tensor& d_what,
                                                    const WSConv2dImpl& layer) {
  const auto& w = layer.weight;
  const double n = static_cast<double>(w[0].numel());
  auto mean = w.mean({1, 2, 3}, true);
  auto centered = w - mean;
  auto var = centered.pow(2).mean({1, 2, 3}, true);
  auto n_var = var * n;
  auto s = torch::sqrt(torch::clamp_min(n_var, layer.options.eps()));
  auto active = (n_var >= layer.options.eps()).to(w.dtype());
  auto d_gain = (d_what * (centered / s)).sum({2, 3, 4}, true);
  auto v = d_what * layer.gain;  // [B, out, ...]
  auto v_mean = v.mean({2, 3, 4}, true);
  auto vc = (v * centered).sum({2, 3, 4}, true);
  auto d_w = (v - v_mean) / s - vc * centered * (active / (s * s * s));
  return {d_w, d_gain};
}

bool all_true(const torch::Tensor& t) { return t.all().item<bool>(); }

// Fused CPU kernels for WSConv2d on per-example cotangents x = dŴ [B, out,
// n] (contiguous): one sweep over x where ws_norms' and ws_backward's tensor
// expressions make five to twelve (and allocate [B, |W|] temporaries), with
// the channel statistics of W (mean, s, active) computed per row on the fly.
// Sums are in double, except the norms' partial sums over blocks of 512
// elements, which are in x's dtype so that they vectorise. Used when x and W
// are CPU tensors of one floating dtype; other devices take the expressions.
bool fused_ws_applicable(const torch::Tensor& x, const WSConv2dImpl& layer) {
  return x.device().is_cpu() && layer.weight.device().is_cpu() &&
         x.scalar_type() == layer.weight.scalar_type() &&
         (x.scalar_type() == torch::kFloat ||
          x.scalar_type() == torch::kDouble);
}

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
void fused_ws_norms(const torch::Tensor& x, const WSConv2dImpl& layer,
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
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / n);
  at::parallel_for(0, out, grain, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const T* wr = wp + o * n;
      double mu, s, active;
      channel_stats(wr, n, eps, mu, s, active);
      const double scale = std::pow(static_cast<double>(gp[o]) / s, 2);
      for (int64_t b = 0; b < batch; ++b) {
        const T* xr = xp + (b * out + o) * n;
        // Blocks of 512 summed in T (vectorised), the block sums in double.
        double q = 0, t = 0, dsum = 0;
        const T muf = static_cast<T>(mu);
        for (int64_t i0 = 0; i0 < n; i0 += 512) {
          const int64_t m = std::min<int64_t>(512, n - i0);
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
void fused_ws_weighted_sum(const torch::Tensor& x, const torch::Tensor& f,
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
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / (n * batch));
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

// fused_ws_weighted_sum into the rule's sums: slot 0 (W) and slot 2 (gain).
void fused_ws_sums(const torch::Tensor& x, const torch::Tensor& factors,
                   const WSConv2dImpl& layer, bool need_w, bool need_gain,
                   std::vector<torch::Tensor>& sums) {
  torch::Tensor d_w, d_gain;
  const auto xc = x.contiguous();
  if (x.scalar_type() == torch::kFloat) {
    fused_ws_weighted_sum<float>(xc, factors, layer, d_w, d_gain);
  } else {
    fused_ws_weighted_sum<double>(xc, factors, layer, d_w, d_gain);
  }
  if (need_w) sums[0] = d_w;
  if (need_gain) sums[2] = d_gain;
}

// Squared norms of the per-example gradients of W and gain from per-example
// cotangents x = dŴ [B, out, ...], without mapping x through ws_backward.
// Per output channel o (n = fan-in, c = W_o − μ_o, s = √max(Σc², eps)):
//   d_gain_o = x_o·c / s,
//   d_W_o = gain_o/s · (x_o − mean(x_o)·1 − active·(x_o·ĉ)ĉ), ĉ = c/‖c‖.
// ĉ ⟂ 1 (c has zero mean), so the bracket is an orthogonal projection and
//   ‖d_W_o‖² = (gain_o/s)² · (‖x_o‖² − (Σx_o)²/n − active·(x_o·c)²/s²)
// (with active, s² = Σc²). Three reductions over x instead of the ~10
// elementwise passes of ws_backward on [B, out, ...] and no [B, |W|] result.
// Returns {‖d_W‖² [B], d_gain [B, out, 1, 1, 1]}.
std::pair<torch::Tensor, torch::Tensor> ws_norms(const torch::Tensor& x,
                                                 const WSConv2dImpl& layer) {
  const auto& w = layer.weight;
  const int64_t out = w.size(0);
  const int64_t batch = x.size(0);
  if (fused_ws_applicable(x, layer)) {
    torch::Tensor contrib, d_gain;
    const auto xc = x.contiguous();
    if (x.scalar_type() == torch::kFloat) {
      fused_ws_norms<float>(xc, layer, contrib, d_gain);
    } else {
      fused_ws_norms<double>(xc, layer, contrib, d_gain);
    }
    return {contrib.sum(1), d_gain.view({batch, out, 1, 1, 1})};
  }
  const double n = static_cast<double>(w[0].numel());
  auto c = w.reshape({out, -1});
  c = c - c.mean(1, true);
  auto n_var = c.pow(2).sum(1);  // [out]
  auto s = torch::sqrt(torch::clamp_min(n_var, layer.options.eps()));
  auto active = (n_var >= layer.options.eps()).to(w.dtype());
  auto xs = x.reshape({batch, out, -1});
  auto sq = xs.pow(2).sum(2);  // [B, out]
  auto sx = xs.sum(2);
  auto dot = (xs * c).sum(2);
  auto inv_s = 1.0 / s;
  auto proj = sq - sx * sx / n - active * (dot * inv_s).pow(2);
  auto scale = (layer.gain.reshape({out}) * inv_s).pow(2);
  auto norm_w = (torch::clamp_min(proj, 0) * scale).sum(1);
  auto d_gain = (dot * inv_s).view({batch, out, 1, 1, 1});
  return {norm_w, d_gain};
}

template <size_t D, typename Layer>
class ConvRule final : public LayerRule {
  static constexpr bool kWs = std::is_same<Layer, WSConv2dImpl>::value;

 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& module) const override {
    const auto& l = dynamic_cast<const Layer&>(module);
    if constexpr (kWs) {
      return {l.weight, l.bias, l.gain};
    } else {
      return {l.weight, l.bias};
    }
  }

  bool uses_output(const LayerCall& call, int64_t group_size) const override {
    if constexpr (kWs) {
      const auto& l = dynamic_cast<const Layer&>(*call.layer);
      return call.grad_output.defined() && ws_use_ghost(call, l, group_size);
    }
    return false;
  }

  void squared_norms(const LayerCall& call, int64_t group_size,
                     const std::vector<bool>& needed,
                     std::vector<torch::Tensor>& norms,
                     std::vector<torch::Tensor>& per_example) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    const int64_t batch = call.input.size(0) / group_size;
    if (needed[1]) {
      per_example[1] = group_sum(bias_rows(call), group_size);
      norms[1] = per_example[1].pow(2).sum(1);
    }
    const bool need_w = needed[0];
    const bool need_gain = kWs && needed[2];
    if (!need_w && !need_gain) return;
    if constexpr (!kWs) {
      if (use_ghost(call, l, group_size)) {
        norms[0] = ghost_norm(call, l, group_size);
        return;
      }
    }
    if constexpr (kWs) {
      if (ws_use_ghost(call, l, group_size)) {
        ws_ghost_norms(call, l, group_size, need_w, need_gain, norms,
                       per_example);
        return;
      }
    }
    auto pe = per_example_weight(call, l, group_size);
    if constexpr (kWs) {
      // Norms without per-example d_W; the weighted sum then maps one
      // summed cotangent through ws_backward (weighted_sums).
      auto [norm_w, d_gain] = ws_norms(pe, l);
      if (need_gain) {
        per_example[2] = d_gain;
        norms[2] = squared_norm_per_example(d_gain);
      }
      if (need_w) {
        norms[0] = norm_w;
        if (batch * l.weight.numel() <= kMaxKeptElements) call.rule_state = pe;
      }
      return;
    }
    if (need_w) {
      norms[0] = squared_norm_per_example(pe);
      if (batch * l.weight.numel() <= kMaxKeptElements) per_example[0] = pe;
    }
  }

  torch::Tensor per_example_grads(const LayerCall& call, size_t slot,
                                  int64_t group_size) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    if (slot == 1) return group_sum(bias_rows(call), group_size);
    auto pe = per_example_weight(call, l, group_size);
    if constexpr (kWs) {
      auto [d_w, d_gain] = ws_backward(pe, l);
      return slot == 0 ? d_w : d_gain;
    }
    return pe;
  }

  void weighted_sums(const LayerCall& call,
                     const std::vector<torch::Tensor>& row_weights,
                     std::vector<torch::Tensor>& sums) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    const auto& g = call.grad_output;
    const int64_t rows = g.size(0);
    std::vector<int64_t> wshape(D + 2, 1);
    wshape[0] = rows;
    if (row_weights[1].defined()) {
      sums[1] = row_weights[1]
                    .to(g.dtype())
                    .view({1, rows})
                    .mm(bias_rows(call))
                    .view({-1});
    }
    const bool need_w = row_weights[0].defined();
    const bool need_gain = kWs && row_weights[2].defined();
    if (!need_w && !need_gain) return;
    // Σ_r w_r ∇_r: one batch weight gradient with G scaled per row. The
    // weight and gain rows weights are equal (same layer, same group).
    const auto& w = need_w ? row_weights[0] : row_weights[2];
    if constexpr (kWs) {
      // Kept per-example dŴ [B, ...] (group-summed): usable when each
      // group's rows carry one weight; ws_backward is linear in dŴ.
      const auto& kept = call.rule_state;
      if (kept.defined() && kept.size(0) > 0 && rows % kept.size(0) == 0) {
        auto wk = w.to(kept.dtype()).view({kept.size(0), -1});
        auto per_example_w = wk.select(1, 0);
        if (wk.size(1) == 1 || all_true(wk.eq(per_example_w.unsqueeze(1)))) {
          if (fused_ws_applicable(kept, l)) {
            fused_ws_sums(kept, per_example_w, l, need_w, need_gain, sums);
            return;
          }
          auto sum_what = torch::tensordot(per_example_w, kept, {0}, {0});
          auto [d_w, d_gain] = ws_backward(sum_what.unsqueeze(0), l);
          if (need_w) sums[0] = d_w.squeeze(0);
          if (need_gain) sums[2] = d_gain.squeeze(0);
          return;
        }
      }
    }
    auto g_scaled = g * w.to(g.dtype()).view(wshape);
    auto grads = torch::convolution_backward(
        g_scaled, call.input, l.weight, c10::nullopt, *l.options.stride(),
        call.ints, *l.options.dilation(), false, std::vector<int64_t>(D, 0),
        l.options.groups(), {false, true, false});
    auto sum_w = std::get<1>(grads);
    if constexpr (kWs) {
      if (fused_ws_applicable(sum_w, l)) {
        fused_ws_sums(sum_w.unsqueeze(0),
                      torch::ones({1}, sum_w.options().dtype(torch::kDouble)),
                      l, need_w, need_gain, sums);
        return;
      }
      auto [d_w, d_gain] = ws_backward(sum_w.unsqueeze(0), l);
      if (need_w) sums[0] = d_w.squeeze(0);
      if (need_gain) sums[2] = d_gain.squeeze(0);
    } else {
      sums[0] = sum_w;
    }
  }

 private:
  static torch::Tensor bias_rows(const LayerCall& call) {
    const auto& g = call.grad_output;
    return g.reshape({g.size(0), g.size(1), -1}).sum(2);  // [N, out]
  }

  // How a 1×1 kernel with no padding and one group gets its per-example
  // weight gradients x_b = Σ_t g_t a_tᵀ (a plain matrix product; stride
  // subsamples the input). Measured at B = 4 and 32 (benchmarks/RESULTS.md):
  //  - kLoop, one convolution_backward per example (its K rows): 15–30%
  //    faster than the product on large maps and layers (NFNet-F0's 12×12
  //    to 48×48 stages: T_row ≥ 100 and T_row·in·out ≥ 2^24); on smaller
  //    layers the per-call overhead dominates (WRN-16-4: 2–4× slower);
  //  - kBmm, one bmm [out, K·T]×[K·T, in] per example: up to 2.5× faster
  //    than the grouped convolution_backward for wide layers (in·out ≥ 2^18,
  //    NFNet's 1536×768) but slower for narrow ones (WRN's 64×128);
  //  - kGrouped: the general route (also for every non-1×1 kernel).
  enum class Pointwise { kGrouped, kLoop, kBmm };

  static Pointwise pointwise_route(const LayerCall& call, const Layer& l) {
    if (l.options.groups() != 1) return Pointwise::kGrouped;
    for (size_t i = 0; i < D; ++i) {
      if ((*l.options.kernel_size())[i] != 1 || call.ints[i] != 0) {
        return Pointwise::kGrouped;
      }
    }
    const auto& g = call.grad_output;
    const int64_t t_row = g.numel() == 0 ? 0 : g[0][0].numel();
    const int64_t in = call.input.size(1);
    const int64_t out = g.size(1);
    if (t_row >= 100 && t_row * in * out >= (int64_t{1} << 24)) {
      return Pointwise::kLoop;
    }
    if (in * out >= (int64_t{1} << 18)) return Pointwise::kBmm;
    return Pointwise::kGrouped;
  }

  // Time of the materialised per-example gradients relative to the batch
  // weight gradient of equal FLOPs (measured, see the file comment).
  static double materialise_factor(const LayerCall& call, const Layer& l,
                                   double t_row) {
    switch (pointwise_route(call, l)) {
      case Pointwise::kLoop:
        return 1.2;
      case Pointwise::kBmm:
        return 1.0 + 48.0 / t_row;
      case Pointwise::kGrouped:
        break;
    }
    return std::max(1.0, 256.0 / t_row);
  }

  static bool use_ghost(const LayerCall& call, const Layer& l,
                        int64_t group_size) {
    if (l.options.groups() != 1) return false;
    const auto& g = call.grad_output;
    const int64_t t = g[0][0].numel() * group_size;
    const int64_t d_in = l.weight[0].numel();
    const int64_t out = l.weight.size(0);
    return 2 * t * (d_in + out) < d_in * out;
  }

  // WSConv2d route choice; the cost model is in the file comment.
  static bool ws_use_ghost(const LayerCall& call, const Layer& l,
                           int64_t group_size) {
    if (l.options.groups() != 1) return false;
    const auto& x = call.input;
    const auto& g = call.grad_output;
    const int64_t batch = g.size(0) / group_size;
    const double t_row = static_cast<double>(g[0][0].numel());
    const double t = t_row * static_cast<double>(group_size);
    double pix = 1;
    for (size_t i = 0; i < D; ++i) {
      pix *= static_cast<double>(x.size(2 + i) + 2 * call.ints[i]);
    }
    const double p = pix * static_cast<double>(group_size);
    const double in = static_cast<double>(x.size(1));
    const double out = static_cast<double>(l.weight.size(0));
    const double d_in = static_cast<double>(l.weight[0].numel());
    const double limit = static_cast<double>(kMaxKeptElements);
    const double b = static_cast<double>(batch);
    if (b * p * p > limit || b * t * t > limit) return false;
    const bool kept = batch * l.weight.numel() <= kMaxKeptElements;
    const double wgrad = t * d_in * out;
    const double grouped =
        wgrad * materialise_factor(call, l, t_row) + (kept ? 0.0 : wgrad);
    // The t·d_in·(out+1) term (the convolution with c) is charged even
    // though a kept output usually replaces it (projections_from_output):
    // whether it will is only known after this choice (uses_output).
    const double ghost =
        p * p * in + t * t * out + t * d_in * (out + 1) + wgrad;
    return ghost < grouped;
  }

  // Per example, Σ_o w_o‖x_o‖² with x_o = Σ_t g_{t,o}·a_t the (group-summed)
  // weight gradient of output channel o and a_t the input patch under output
  // position t: Σ_ts (a_t·a_s)(Σ_o w_o g_{t,o} g_{s,o}). The patch Gram
  // a_t·a_s is Σ_δ P[t∘δ, s∘δ] over the kernel offsets δ, P the Gram of the
  // padded input's pixels (over channels, per example across its K rows):
  // B·p²·in multiply-adds instead of unfolding B·t·d_in values.
  static torch::Tensor ghost_sum(const LayerCall& call, const Layer& l,
                                 int64_t group_size,
                                 const torch::Tensor& col_weight) {
    const auto& g = call.grad_output;
    const int64_t rows = g.size(0);
    const int64_t batch = rows / group_size;
    const int64_t out = g.size(1);
    torch::Tensor x = call.input;
    const int64_t in = x.size(1);
    bool padded = false;
    for (int64_t v : call.ints) padded = padded || v != 0;
    if (padded) {
      std::vector<int64_t> pads;  // last dimension first
      for (size_t i = D; i-- > 0;) {
        pads.push_back(call.ints[i]);
        pads.push_back(call.ints[i]);
      }
      x = torch::constant_pad_nd(x, pads, 0);
    }
    const int64_t pix = x[0][0].numel();
    auto xs = x.reshape({batch, group_size, in, pix})
                  .transpose(1, 2)
                  .reshape({batch, in, group_size * pix});
    std::vector<int64_t> view = {batch, group_size};
    for (size_t i = 0; i < D; ++i) view.push_back(x.size(2 + i));
    view.push_back(group_size);
    for (size_t i = 0; i < D; ++i) view.push_back(x.size(2 + i));
    auto pixel_gram = torch::bmm(xs.transpose(1, 2), xs).view(view);
    int64_t offsets = 1;
    for (size_t i = 0; i < D; ++i) offsets *= (*l.options.kernel_size())[i];
    torch::Tensor gram;
    for (int64_t idx = 0; idx < offsets; ++idx) {
      torch::Tensor v = pixel_gram;
      int64_t rest = idx;
      for (size_t i = D; i-- > 0;) {
        const int64_t k = (*l.options.kernel_size())[i];
        const int64_t step = (*l.options.stride())[i];
        const int64_t start = (rest % k) * (*l.options.dilation())[i];
        rest /= k;
        const int64_t end = start + step * (g.size(2 + i) - 1) + 1;
        v = v.slice(static_cast<int64_t>(2 + i), start, end, step)
                .slice(static_cast<int64_t>(3 + D + i), start, end, step);
      }
      gram =
          gram.defined() ? gram.add_(v) : v.clone(at::MemoryFormat::Contiguous);
    }
    const int64_t t = group_size * g[0][0].numel();
    gram = gram.view({batch, t, t});
    auto gt = g.reshape({batch, group_size, out, -1})
                  .permute({0, 1, 3, 2})
                  .reshape({batch, t, out});
    if (col_weight.defined()) gt = gt * col_weight.sqrt().to(gt.dtype());
    auto gram_g = torch::bmm(gt, gt.transpose(1, 2));
    return (gram * gram_g).sum({1, 2});
  }

  // WSConv2d norms by the ghost route (see ws_norms for the formula):
  // ‖d_W‖² = Σ_o w_o(‖x_o‖² − (Σx_o)²/n − active·(x_o·c)²/s²), w_o =
  // (gain_o/s)², with Σ_o w_o‖x_o‖² from ghost_sum and, per example and
  // channel, Σx_o = Σ_t g_{t,o}·(1·a_t) and x_o·c = Σ_t g_{t,o}·(c_o·a_t)
  // from convolutions of the input with c and with ones; d_gain = x_o·c/s.
  static void ws_ghost_norms(const LayerCall& call, const Layer& l,
                             int64_t group_size, bool need_w, bool need_gain,
                             std::vector<torch::Tensor>& norms,
                             std::vector<torch::Tensor>& per_example) {
    if constexpr (kWs) {
      const auto& w = l.weight;
      const auto& g = call.grad_output;
      const int64_t rows = g.size(0);
      const int64_t batch = rows / group_size;
      const int64_t out = w.size(0);
      const double n = static_cast<double>(w[0].numel());
      auto c = w.reshape({out, -1});
      c = c - c.mean(1, true);
      auto n_var = c.pow(2).sum(1);  // [out]
      auto s = torch::sqrt(torch::clamp_min(n_var, l.options.eps()));
      auto active = (n_var >= l.options.eps()).to(w.dtype());
      auto inv_s = 1.0 / s;
      auto conv = [&](const torch::Tensor& x, const torch::Tensor& kernel) {
        return torch::convolution(x, kernel, c10::nullopt, *l.options.stride(),
                                  call.ints, *l.options.dilation(), false,
                                  std::vector<int64_t>(D, 0), 1);
      };
      auto g3 = g.reshape({rows, out, -1});
      auto z = projections_from_output(call, l, s);
      if (!z.defined()) {
        z = conv(call.input, c.view(w.sizes())).reshape({rows, out, -1});
      }
      auto dot = group_sum((g3 * z).sum(2), group_size);
      auto d_gain = dot * inv_s;  // [B, out]
      if (need_gain) {
        per_example[2] = d_gain.view({batch, out, 1, 1, 1});
        norms[2] = d_gain.pow(2).sum(1);
      }
      if (!need_w) return;
      // 1·a_t: the channel sum convolved with a kernel of ones.
      std::vector<int64_t> ones_shape(w.sizes().begin(), w.sizes().end());
      ones_shape[0] = 1;
      ones_shape[1] = 1;
      auto patch_sums =
          conv(call.input.sum(1, true), torch::ones(ones_shape, w.options()));
      auto sx = group_sum((g3 * patch_sums.reshape({rows, 1, -1})).sum(2),
                          group_size);
      auto scale = (l.gain.reshape({out}) * inv_s).pow(2);
      auto total = ghost_sum(call, l, group_size, scale);
      auto removed = ((sx * sx / n + active * d_gain.pow(2)) * scale).sum(1);
      norms[0] = torch::clamp_min(total - removed, 0);
    }
  }

  // c_o·a_t for every row, channel o and position t ([N, out, T]) from the
  // layer's output y = conv(x, Ŵ) + bias, Ŵ_o = gain_o·c_o/s_o: (y − bias)·
  // s/gain, instead of a convolution of the input with c (the cost of the
  // layer's forward). Undefined — use the convolution — when the output was
  // not kept, a gain is 0, or a bias is over 16 times the largest |y_o −
  // bias_o| of its channel: y − bias would then lose more than 4 bits to
  // cancellation.
  static torch::Tensor projections_from_output(const LayerCall& call,
                                               const Layer& l,
                                               const torch::Tensor& s) {
    if constexpr (kWs) {
      if (!call.output.defined()) return {};
      const int64_t out = l.weight.size(0);
      auto y = call.output.reshape({call.output.size(0), out, -1});
      const auto gain = l.gain.reshape({1, out, 1});
      if (!all_true(gain.ne(0))) return {};
      if (l.bias.defined()) {
        const auto bias = l.bias.reshape({1, out, 1});
        y = y - bias;
        const auto largest = y.abs().amax({0, 2});
        if (!all_true(bias.reshape({out}).abs() <= 16 * largest)) {
          return {};
        }
      }
      return y * (s.reshape({1, out, 1}) / gain);
    }
    return {};
  }

  // Patches [N, T, d_in] of the (padded) input.
  static torch::Tensor patches(const LayerCall& call, const Layer& l) {
    torch::Tensor x = call.input;
    auto vec = [](const auto& a) {
      return std::vector<int64_t>(a->begin(), a->end());
    };
    std::vector<int64_t> k = vec(l.options.kernel_size());
    std::vector<int64_t> s = vec(l.options.stride());
    std::vector<int64_t> d = vec(l.options.dilation());
    std::vector<int64_t> p = call.ints;
    if constexpr (D == 1) {
      x = x.unsqueeze(2);
      k.insert(k.begin(), 1);
      s.insert(s.begin(), 1);
      d.insert(d.begin(), 1);
      p.insert(p.begin(), 0);
    }
    return torch::im2col(x, k, d, p, s).transpose(1, 2);
  }

  static torch::Tensor ghost_norm(const LayerCall& call, const Layer& l,
                                  int64_t group_size) {
    const auto& g = call.grad_output;
    const int64_t batch = g.size(0) / group_size;
    auto a = patches(call, l).reshape({batch, -1, l.weight[0].numel()});
    auto gg = g.reshape({g.size(0), g.size(1), -1})
                  .transpose(1, 2)
                  .reshape({batch, -1, g.size(1)});
    auto gram_a = torch::bmm(a, a.transpose(1, 2));
    auto gram_g = torch::bmm(gg, gg.transpose(1, 2));
    return (gram_a * gram_g).sum({1, 2});
  }

  // Per-example (group-summed) gradients of the convolution's weight
  // [B, out, in/groups, k...] by one grouped convolution_backward.
  static torch::Tensor per_example_weight(const LayerCall& call, const Layer& l,
                                          int64_t group_size) {
    const auto& x = call.input;
    const auto& g = call.grad_output;
    const int64_t rows = x.size(0);
    const int64_t batch = rows / group_size;
    const int64_t in = x.size(1);
    const int64_t out = g.size(1);
    const Pointwise route = pointwise_route(call, l);
    if (route != Pointwise::kGrouped) {
      // x_b = Σ_t g_t a_tᵀ: one [out, K·T] × [K·T, in] product per example.
      torch::Tensor xs = x;
      for (size_t i = 0; i < D; ++i) {
        const int64_t step = (*l.options.stride())[i];
        if (step != 1) {
          xs = xs.slice(static_cast<int64_t>(2 + i), 0, c10::nullopt, step);
        }
      }
      std::vector<int64_t> pe_shape(l.weight.sizes().begin(),
                                    l.weight.sizes().end());
      pe_shape.insert(pe_shape.begin(), batch);
      if (route == Pointwise::kLoop) {
        auto pe = torch::empty(pe_shape, g.options());
        for (int64_t b = 0; b < batch; ++b) {
          auto grads = torch::convolution_backward(
              g.narrow(0, b * group_size, group_size),
              x.narrow(0, b * group_size, group_size), l.weight, c10::nullopt,
              *l.options.stride(), call.ints, *l.options.dilation(), false,
              std::vector<int64_t>(D, 0), 1, {false, true, false});
          pe[b].copy_(std::get<1>(grads));
        }
        return pe;
      }
      auto gm = g.reshape({rows, out, -1});
      auto am = xs.reshape({rows, in, -1});
      if (group_size != 1) {
        gm = gm.view({batch, group_size, out, -1})
                 .transpose(1, 2)
                 .reshape({batch, out, -1});
        am = am.view({batch, group_size, in, -1})
                 .transpose(1, 2)
                 .reshape({batch, in, -1});
      }
      return torch::bmm(gm, am.transpose(1, 2)).view(pe_shape);
    }
    auto regroup = [&](const torch::Tensor& t, int64_t channels) {
      std::vector<int64_t> view = {batch, group_size, channels};
      std::vector<int64_t> shape = {group_size, batch * channels};
      for (int64_t i = 2; i < t.dim(); ++i) {
        view.push_back(t.size(i));
        shape.push_back(t.size(i));
      }
      if (group_size == 1) return t.reshape(shape);
      return t.reshape(view).transpose(0, 1).reshape(shape);
    };
    auto xg = regroup(x, in);
    auto gg = regroup(g, out);
    std::vector<int64_t> wshape(l.weight.sizes().begin(),
                                l.weight.sizes().end());
    wshape[0] = batch * out;
    auto dummy = torch::empty(wshape, l.weight.options());
    auto grads = torch::convolution_backward(
        gg, xg, dummy, c10::nullopt, *l.options.stride(), call.ints,
        *l.options.dilation(), false, std::vector<int64_t>(D, 0),
        batch * l.options.groups(), {false, true, false});
    std::vector<int64_t> pe_shape(l.weight.sizes().begin(),
                                  l.weight.sizes().end());
    pe_shape.insert(pe_shape.begin(), batch);
    return std::get<1>(grads).view(pe_shape);
  }
};

}  // namespace

std::shared_ptr<const LayerRule> make_conv1d_rule() {
  return std::make_shared<ConvRule<1, Conv1dImpl>>();
}
std::shared_ptr<const LayerRule> make_conv2d_rule() {
  return std::make_shared<ConvRule<2, Conv2dImpl>>();
}
std::shared_ptr<const LayerRule> make_wsconv2d_rule() {
  return std::make_shared<ConvRule<2, WSConv2dImpl>>();
}

}  // namespace dptrain::dp::detail
