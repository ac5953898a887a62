// Rules for Conv1d, Conv2d and WSConv2d. Per example, with T output
// positions (times the group size K), d_in = in/groups · kernel area:
//  - materialised: per-example weight gradients [B, out, in/groups, k...]
//    from ONE grouped convolution_backward (groups = B·groups, batch = K),
//    which oneDNN runs several times faster than unfold + bmm on CPU
//    (../shared/MEASURED.md); cost ≈ B·T·d_in·out FLOPs, memory B·|W|.
//  - ghost (groups = 1 only): unfold, then Σ_ts (a_t·a_s)(g_t·g_s); cost
//    B·T²·(d_in+out) FLOPs plus the unfold copy, memory B·T².
//    Chosen iff 2·T·(d_in+out) < d_in·out (the 2 charges for the unfold).
//  - weighted sum: from kept per-example gradients (a [B]×[B, |W|] product)
//    if B·|W| ≤ kMaxKeptElements, else one batch weight gradient with G
//    scaled per row (the non-private weight gradient's cost).
// WSConv2d: the per-example gradient of Ŵ is materialised; the norms of the
// gradients of W and gain follow from three reductions over it, because the
// standardisation backward is, per output channel, a scaled orthogonal
// projection (ws_norms). Only the weighted sum goes through ws_backward, on
// one summed cotangent. Per-example d_W is never formed (except for tied
// weights, per_example_grads).
#include <torch/torch.h>

#include <type_traits>

#include "builtin_rules.h"
#include "dptrain/dp/layers/conv.h"

namespace dptrain::dp::detail {
namespace {

constexpr int64_t kMaxKeptElements = int64_t{1} << 24;

// Backward of Ŵ = gain·(W − μ)·rsqrt(max(n·var, eps)) for a batch of
// cotangents dŴ [B, out, ...]: returns {dW [B, out, ...], dgain [B, out,1,1,1]}.
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
    auto pe = per_example_weight(call, l, group_size);
    if constexpr (kWs) {
      // Norms without per-example d_W; the weighted sum then maps one
      // summed cotangent through ws_backward (weighted_sums).
      auto [norm_w, d_gain] = ws_norms(pe, l);
      if (need_gain) {
        per_example[2] = d_gain;
        norms[2] = squared_norm_per_example(d_gain);
      }
      if (need_w) norms[0] = norm_w;
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
      sums[1] = row_weights[1].to(g.dtype()).view({1, rows}).mm(bias_rows(call))
                    .view({-1});
    }
    const bool need_w = row_weights[0].defined();
    const bool need_gain = kWs && row_weights[2].defined();
    if (!need_w && !need_gain) return;
    // Σ_r w_r ∇_r: one batch weight gradient with G scaled per row. The
    // weight and gain rows weights are equal (same layer, same group).
    const auto& w = need_w ? row_weights[0] : row_weights[2];
    auto g_scaled = g * w.to(g.dtype()).view(wshape);
    auto grads = torch::convolution_backward(
        g_scaled, call.input, l.weight, c10::nullopt, *l.options.stride(),
        call.ints, *l.options.dilation(), false, std::vector<int64_t>(D, 0),
        l.options.groups(), {false, true, false});
    auto sum_w = std::get<1>(grads);
    if constexpr (kWs) {
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

  static bool use_ghost(const LayerCall& call, const Layer& l,
                        int64_t group_size) {
    if (l.options.groups() != 1) return false;
    const auto& g = call.grad_output;
    const int64_t t = g[0][0].numel() * group_size;
    const int64_t d_in = l.weight[0].numel();
    const int64_t out = l.weight.size(0);
    return 2 * t * (d_in + out) < d_in * out;
  }

  // Patches [N, T, d_in] of the (padded) input.
  static torch::Tensor patches(const LayerCall& call, const Layer& l) {
    torch::Tensor x = call.input;
    auto vec = [](const auto& a) { return std::vector<int64_t>(a->begin(), a->end()); };
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
    std::vector<int64_t> wshape(l.weight.sizes().begin(), l.weight.sizes().end());
    wshape[0] = batch * out;
    auto dummy = torch::empty(wshape, l.weight.options());
    auto grads = torch::convolution_backward(
        gg, xg, dummy, c10::nullopt, *l.options.stride(), call.ints,
        *l.options.dilation(), false, std::vector<int64_t>(D, 0),
        batch * l.options.groups(), {false, true, false});
    std::vector<int64_t> pe_shape(l.weight.sizes().begin(), l.weight.sizes().end());
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
