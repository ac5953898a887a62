// Rule for WSConv2d. The norms of the gradients of W and gain follow from
// three reductions over the per-example gradient x = dŴ, because the
// standardisation backward is, per output channel, a scaled orthogonal
// projection (ws_norms). Two routes give those reductions:
//  - grouped: x materialised by the grouped convolution_backward
//    (per_example_weight, conv_rule.cpp); x is kept (LayerCall::rule_state)
//    when B·|W| ≤ kMaxKeptElements, and the weighted sum is then Σ cᵢxᵢ (a
//    [B]×[B, |W|] product) mapped once through ws_backward; otherwise one
//    batch weight gradient, then ws_backward. On CPU both steps on kept x
//    are fused loops (fused_ws_norms, fused_ws_weighted_sum,
//    conv_kernels_cpu.cpp): one sweep over x each.
//  - ghost (groups = 1; ws_ghost_norms): Σ_o w_o‖x_o‖² from the Gram of the
//    padded input's PIXELS (the patch Gram is the sum of k^D shifted blocks
//    of it, no unfold) and the Gram of G with columns scaled by √w_o; the
//    two projection terms Σx_o and x_o·c_o from one extra convolution of the
//    input with c (and of its channel sum with a kernel of ones; not one
//    convolution with out+1 channels: oneDNN runs that 12% slower). The
//    weighted sum is one batch weight gradient, then ws_backward.
// The choice between them is ws_ghost_cheaper (conv_cost_model.h).
#include <torch/torch.h>

#include <cstddef>
#include <string>
#include <vector>

#include "conv_common.h"
#include "conv_kernels_cpu.h"
#include "dptrain/dp/layers/ws_channel_stats.h"

namespace dptrain::dp::detail {
namespace {

// projections_from_output's cancellation guard: (y − bias) is used only
// while every |bias_o| ≤ kMaxBiasToSignal · max |y_o − bias_o|, i.e. the
// subtraction loses at most log2(16) = 4 bits. A precision bound chosen,
// not measured.
constexpr int kMaxBiasToSignal = 16;

// Backward of Ŵ = gain·(W − μ)·rsqrt(max(n·var, eps)) for a batch of
// cotangents dŴ [B, out, ...]: returns {dW [B, out, ...], dgain [B,
// out,1,1,1]}.
std::pair<torch::Tensor, torch::Tensor> ws_backward(const torch::Tensor& d_what,
                                                    const WSConv2dImpl& layer) {
  const auto st = ws_channel_stats(layer.weight, layer.options.eps());
  const auto& centered = st.centered;
  const auto& s = st.s;
  const auto& active = st.active;
  auto d_gain = (d_what * (centered / s)).sum({2, 3, 4}, true);
  auto v = d_what * layer.gain;  // [B, out, ...]
  auto v_mean = v.mean({2, 3, 4}, true);
  auto vc = (v * centered).sum({2, 3, 4}, true);
  auto d_w = (v - v_mean) / s - vc * centered * (active / (s * s * s));
  return {d_w, d_gain};
}

// fused_ws_weighted_sum into the rule's sums (kWeightSlot, kGainSlot).
void fused_ws_sums(const torch::Tensor& x, const torch::Tensor& factors,
                   const WSConv2dImpl& layer, bool need_w, bool need_gain,
                   std::vector<torch::Tensor>& sums) {
  torch::Tensor d_w, d_gain;
  fused_ws_weighted_sum(x, factors, layer, d_w, d_gain);
  if (need_w) sums[kWeightSlot] = d_w;
  if (need_gain) sums[kGainSlot] = d_gain;
}

// Squared norms of the per-example gradients of W and gain from per-example
// cotangents x = dŴ [B, out, ...], without mapping x through ws_backward.
// Per output channel o (n = fan-in, c = W_o − μ_o, s = √max(Σc², eps);
// ws_channel_stats, dptrain/dp/layers/ws_channel_stats.h):
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
    fused_ws_norms(x, layer, contrib, d_gain);
    return {contrib.sum(1), d_gain.view({batch, out, 1, 1, 1})};
  }
  const double n = static_cast<double>(w[0].numel());
  const auto st = ws_channel_stats(w, layer.options.eps());
  auto c = st.centered.reshape({out, -1});
  auto s = st.s.reshape({out});
  auto active = st.active.reshape({out});
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

class WSConvRule final : public LayerRule {
  static constexpr size_t D = 2;
  using Layer = WSConv2dImpl;

 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& module) const override {
    const auto& l = dynamic_cast<const Layer&>(module);
    return {l.weight, l.bias, l.gain};
  }

  // The materialised routes, and ghost (one group) when the cost model
  // picks it or its Grams fit kMaxKeptElements.
  std::vector<std::string> routes(const LayerCall& call,
                                  int64_t group_size) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    auto routes = materialised_routes<D>(call, l);
    if (l.options.groups() != 1) return routes;
    const auto shape = route_shape(call, l, group_size);
    offer_ghost(routes, ws_ghost_cheaper(shape), ws_ghost_fits(shape));
    return routes;
  }

  // The output replaces a convolution on the ghost route
  // (projections_from_output): kept where the cost model would take ghost
  // for K = 1 (at record time K is not known; elsewhere the ghost route, if
  // measured or forced, convolves instead).
  bool may_read_output(const LayerCall& call) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    if (l.options.groups() != 1 || call.output.numel() == 0) return false;
    return ws_ghost_cheaper(route_shape(call, l, 1));
  }

  bool uses_output(const LayerCall& call, int64_t group_size) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    return call.grad_output.defined() && ws_use_ghost(call, l, group_size);
  }

  void squared_norms(const LayerCall& call, int64_t group_size,
                     const std::vector<bool>& needed,
                     std::vector<torch::Tensor>& norms,
                     std::vector<torch::Tensor>& per_example) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    const int64_t batch = call.input.size(0) / group_size;
    if (needed[kBiasSlot]) bias_norms(call, group_size, norms, per_example);
    const bool need_w = needed[kWeightSlot];
    const bool need_gain = needed[kGainSlot];
    if (!need_w && !need_gain) return;
    if (ws_use_ghost(call, l, group_size)) {
      ws_ghost_norms(call, l, group_size, need_w, need_gain, norms,
                     per_example);
      return;
    }
    auto pe = per_example_weight<D>(call, l, group_size);
    // Norms without per-example d_W; the weighted sum then maps one
    // summed cotangent through ws_backward (weighted_sums).
    auto [norm_w, d_gain] = ws_norms(pe, l);
    if (need_gain) {
      per_example[kGainSlot] = d_gain;
      norms[kGainSlot] = squared_norm_per_example(d_gain);
    }
    if (need_w) {
      norms[kWeightSlot] = norm_w;
      if (batch * l.weight.numel() <= kMaxKeptElements) call.rule_state = pe;
    }
  }

  torch::Tensor per_example_grads(const LayerCall& call, size_t slot,
                                  int64_t group_size) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    if (slot == kBiasSlot) return group_sum(bias_rows(call), group_size);
    auto pe = per_example_weight<D>(call, l, group_size);
    auto [d_w, d_gain] = ws_backward(pe, l);
    return slot == kWeightSlot ? d_w : d_gain;
  }

  // With dŴ kept (the grouped route) the weight's and gain's sums need
  // only it and the weight, provided each example's rows carry one weight
  // (the engine's always do; weighted_sums falls back to A and G
  // otherwise); the bias's needs G.
  bool weighted_sums_read_activations(
      const LayerCall& call, const std::vector<bool>& summed) const override {
    return summed[kBiasSlot] || !call.rule_state.defined();
  }

  void weighted_sums(const LayerCall& call,
                     const std::vector<torch::Tensor>& row_weights,
                     std::vector<torch::Tensor>& sums) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    if (row_weights[kBiasSlot].defined()) {
      sums[kBiasSlot] = bias_weighted_sum(call, row_weights[kBiasSlot]);
    }
    const bool need_w = row_weights[kWeightSlot].defined();
    const bool need_gain = row_weights[kGainSlot].defined();
    if (!need_w && !need_gain) return;
    // Σ_r w_r ∇_r: one batch weight gradient with G scaled per row. The
    // weight and gain rows weights are equal (same layer, same group).
    const auto& w = need_w ? row_weights[kWeightSlot] : row_weights[kGainSlot];
    // Kept per-example dŴ [B, ...] (group-summed): usable when each
    // group's rows carry one weight; ws_backward is linear in dŴ.
    const auto& kept = call.rule_state;
    const int64_t rows = w.size(0);
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
        if (need_w) sums[kWeightSlot] = d_w.squeeze(0);
        if (need_gain) sums[kGainSlot] = d_gain.squeeze(0);
        return;
      }
    }
    auto sum_w = weighted_weight_grad<D>(call, l, w);
    if (fused_ws_applicable(sum_w, l)) {
      fused_ws_sums(sum_w.unsqueeze(0),
                    torch::ones({1}, sum_w.options().dtype(torch::kDouble)), l,
                    need_w, need_gain, sums);
      return;
    }
    auto [d_w, d_gain] = ws_backward(sum_w.unsqueeze(0), l);
    if (need_w) sums[kWeightSlot] = d_w.squeeze(0);
    if (need_gain) sums[kGainSlot] = d_gain.squeeze(0);
  }

 private:
  // The ghost route: call.route's, else the cost model's
  // (ws_ghost_cheaper, conv_cost_model.h).
  static bool ws_use_ghost(const LayerCall& call, const Layer& l,
                           int64_t group_size) {
    if (l.options.groups() != 1) return false;
    if (!call.route.empty()) return call.route == kGhostRoute;
    return ws_ghost_cheaper(route_shape(call, l, group_size));
  }

  // From the output gradient's shape (the output's, before the backward).
  static WsRouteShape route_shape(const LayerCall& call, const Layer& l,
                                  int64_t group_size) {
    const auto& x = call.input;
    const auto& g = call.grad_output.defined() ? call.grad_output : call.output;
    WsRouteShape shape;
    shape.batch = g.size(0) / group_size;
    shape.group_size = group_size;
    shape.t_row = static_cast<double>(g[0][0].numel());
    double pix = 1;
    for (size_t i = 0; i < D; ++i) {
      pix *= static_cast<double>(x.size(2 + i) + 2 * call.ints[i]);
    }
    shape.pixels = pix;
    shape.in = static_cast<double>(x.size(1));
    shape.out = static_cast<double>(l.weight.size(0));
    shape.d_in = static_cast<double>(l.weight[0].numel());
    shape.weight_numel = l.weight.numel();
    shape.pointwise = pointwise_route<D>(call, l);
    return shape;
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
    const torch::Tensor x = pad_symmetric(call.input, call.ints);
    const int64_t in = x.size(1);
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
    const auto& w = l.weight;
    const auto& g = call.grad_output;
    const int64_t rows = g.size(0);
    const int64_t batch = rows / group_size;
    const int64_t out = w.size(0);
    const double n = static_cast<double>(w[0].numel());
    const auto st = ws_channel_stats(w, l.options.eps());
    auto s = st.s.reshape({out});
    auto active = st.active.reshape({out});
    auto inv_s = 1.0 / s;
    auto conv = [&](const torch::Tensor& x, const torch::Tensor& kernel) {
      return torch::convolution(x, kernel, c10::nullopt, *l.options.stride(),
                                call.ints, *l.options.dilation(), false,
                                std::vector<int64_t>(D, 0), 1);
    };
    auto g3 = g.reshape({rows, out, -1});
    auto z = projections_from_output(call, l, s);
    if (!z.defined()) {
      z = conv(call.input, st.centered).reshape({rows, out, -1});
    }
    auto dot = group_sum((g3 * z).sum(2), group_size);
    auto d_gain = dot * inv_s;  // [B, out]
    if (need_gain) {
      per_example[kGainSlot] = d_gain.view({batch, out, 1, 1, 1});
      norms[kGainSlot] = d_gain.pow(2).sum(1);
    }
    if (!need_w) return;
    // 1·a_t: the channel sum convolved with a kernel of ones.
    std::vector<int64_t> ones_shape(w.sizes().begin(), w.sizes().end());
    ones_shape[0] = 1;
    ones_shape[1] = 1;
    auto patch_sums =
        conv(call.input.sum(1, true), torch::ones(ones_shape, w.options()));
    auto sx =
        group_sum((g3 * patch_sums.reshape({rows, 1, -1})).sum(2), group_size);
    auto scale = (l.gain.reshape({out}) * inv_s).pow(2);
    auto total = ghost_sum(call, l, group_size, scale);
    auto removed = ((sx * sx / n + active * d_gain.pow(2)) * scale).sum(1);
    norms[kWeightSlot] = torch::clamp_min(total - removed, 0);
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
    if (!call.output.defined()) return {};
    const int64_t out = l.weight.size(0);
    auto y = call.output.reshape({call.output.size(0), out, -1});
    const auto gain = l.gain.reshape({1, out, 1});
    if (!all_true(gain.ne(0))) return {};
    if (l.bias.defined()) {
      const auto bias = l.bias.reshape({1, out, 1});
      y = y - bias;
      const auto largest = y.abs().amax({0, 2});
      if (!all_true(bias.reshape({out}).abs() <= kMaxBiasToSignal * largest)) {
        return {};
      }
    }
    return y * (s.reshape({1, out, 1}) / gain);
  }
};

}  // namespace

std::shared_ptr<const LayerRule> make_wsconv2d_rule() {
  return std::make_shared<WSConvRule>();
}

}  // namespace dptrain::dp::detail
