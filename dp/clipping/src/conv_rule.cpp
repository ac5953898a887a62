// Rules for Conv1d and Conv2d, and the materialised per-example weight
// gradients and batch weight gradient that the WSConv2d rule
// (ws_conv_rule.cpp) also uses. Per example, with T output positions (times
// the group size K), d_in = in/groups · kernel area:
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
//    Chosen iff 2·T·(d_in+out) < d_in·out (the 2 charges for the unfold;
//    conv_ghost_cheaper, conv_cost_model.h).
//  - weighted sum: from kept per-example gradients (a [B]×[B, |W|] product)
//    if B·|W| ≤ kMaxKeptElements, else one batch weight gradient with G
//    scaled per row (the non-private weight gradient's cost).
#include <torch/torch.h>

#include <cstddef>
#include <string>
#include <vector>

#include "conv_common.h"

namespace dptrain::dp::detail {

template <size_t D, typename Layer>
torch::Tensor per_example_weight(const LayerCall& call, const Layer& l,
                                 int64_t group_size) {
  const auto& x = call.input;
  const auto& g = call.grad_output;
  const int64_t rows = x.size(0);
  const int64_t batch = rows / group_size;
  const int64_t in = x.size(1);
  const int64_t out = g.size(1);
  const Pointwise route = materialised_route<D>(call, l);
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
            std::vector<int64_t>(D, 0), 1, kWeightGradOnly);
        pe[b].copy_(std::get<kConvBackwardWeight>(grads));
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
  std::vector<int64_t> wshape(l.weight.sizes().begin(), l.weight.sizes().end());
  wshape[0] = batch * out;
  auto dummy = torch::empty(wshape, l.weight.options());
  auto grads = torch::convolution_backward(
      gg, xg, dummy, c10::nullopt, *l.options.stride(), call.ints,
      *l.options.dilation(), false, std::vector<int64_t>(D, 0),
      batch * l.options.groups(), kWeightGradOnly);
  std::vector<int64_t> pe_shape(l.weight.sizes().begin(),
                                l.weight.sizes().end());
  pe_shape.insert(pe_shape.begin(), batch);
  return std::get<kConvBackwardWeight>(grads).view(pe_shape);
}

template <size_t D, typename Layer>
torch::Tensor weighted_weight_grad(const LayerCall& call, const Layer& l,
                                   const torch::Tensor& row_weight) {
  const auto& g = call.grad_output;
  std::vector<int64_t> wshape(D + 2, 1);
  wshape[0] = g.size(0);
  auto g_scaled = g * row_weight.to(g.dtype()).view(wshape);
  auto grads = torch::convolution_backward(
      g_scaled, call.input, l.weight, c10::nullopt, *l.options.stride(),
      call.ints, *l.options.dilation(), false, std::vector<int64_t>(D, 0),
      l.options.groups(), kWeightGradOnly);
  return std::get<kConvBackwardWeight>(grads);
}

template torch::Tensor per_example_weight<1, Conv1dImpl>(const LayerCall&,
                                                         const Conv1dImpl&,
                                                         int64_t);
template torch::Tensor per_example_weight<2, Conv2dImpl>(const LayerCall&,
                                                         const Conv2dImpl&,
                                                         int64_t);
template torch::Tensor per_example_weight<2, WSConv2dImpl>(const LayerCall&,
                                                           const WSConv2dImpl&,
                                                           int64_t);
template torch::Tensor weighted_weight_grad<1, Conv1dImpl>(
    const LayerCall&, const Conv1dImpl&, const torch::Tensor&);
template torch::Tensor weighted_weight_grad<2, Conv2dImpl>(
    const LayerCall&, const Conv2dImpl&, const torch::Tensor&);
template torch::Tensor weighted_weight_grad<2, WSConv2dImpl>(
    const LayerCall&, const WSConv2dImpl&, const torch::Tensor&);

namespace {

template <size_t D, typename Layer>
class ConvRule final : public LayerRule {
 public:
  std::vector<torch::Tensor> parameters(
      const torch::nn::Module& module) const override {
    const auto& l = dynamic_cast<const Layer&>(module);
    return {l.weight, l.bias};
  }

  // The materialised routes, and ghost (one group) when the cost model
  // picks it or its Grams and patches fit kMaxKeptElements.
  std::vector<std::string> routes(const LayerCall& call,
                                  int64_t group_size) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    auto routes = materialised_routes<D>(call, l);
    if (l.options.groups() != 1) return routes;
    const auto& g = call.grad_output;
    const int64_t batch = g.size(0) / group_size;
    const int64_t t = g.numel() == 0 ? 0 : g[0][0].numel() * group_size;
    const int64_t d_in = l.weight[0].numel();
    const bool fits = batch * t * t <= kMaxKeptElements &&
                      batch * t * d_in <= kMaxKeptElements;
    offer_ghost(routes, use_ghost(call, l, group_size), fits);
    return routes;
  }

  void squared_norms(const LayerCall& call, int64_t group_size,
                     const std::vector<bool>& needed,
                     std::vector<torch::Tensor>& norms,
                     std::vector<torch::Tensor>& per_example) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    const int64_t batch = call.input.size(0) / group_size;
    if (needed[kBiasSlot]) bias_norms(call, group_size, norms, per_example);
    if (!needed[kWeightSlot]) return;
    if (l.options.groups() == 1 &&
        takes_ghost(call, use_ghost(call, l, group_size))) {
      norms[kWeightSlot] = ghost_norm(call, l, group_size);
      return;
    }
    auto pe = per_example_weight<D>(call, l, group_size);
    norms[kWeightSlot] = squared_norm_per_example(pe);
    if (batch * l.weight.numel() <= kMaxKeptElements) {
      per_example[kWeightSlot] = pe;
    }
  }

  torch::Tensor per_example_grads(const LayerCall& call, size_t slot,
                                  int64_t group_size) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    if (slot == kBiasSlot) return group_sum(bias_rows(call), group_size);
    return per_example_weight<D>(call, l, group_size);
  }

  void weighted_sums(const LayerCall& call,
                     const std::vector<torch::Tensor>& row_weights,
                     std::vector<torch::Tensor>& sums) const override {
    const auto& l = dynamic_cast<const Layer&>(*call.layer);
    if (row_weights[kBiasSlot].defined()) {
      sums[kBiasSlot] = bias_weighted_sum(call, row_weights[kBiasSlot]);
    }
    if (!row_weights[kWeightSlot].defined()) return;
    // Σ_r w_r ∇_r: one batch weight gradient with G scaled per row.
    sums[kWeightSlot] =
        weighted_weight_grad<D>(call, l, row_weights[kWeightSlot]);
  }

 private:
  // The route choice (conv_ghost_cheaper, conv_cost_model.h).
  static bool use_ghost(const LayerCall& call, const Layer& l,
                        int64_t group_size) {
    if (l.options.groups() != 1) return false;
    const auto& g = call.grad_output;
    const int64_t t = g[0][0].numel() * group_size;
    const int64_t d_in = l.weight[0].numel();
    const int64_t out = l.weight.size(0);
    return conv_ghost_cheaper(t, d_in, out);
  }

  // Each example's patches [B, K·T, d_in] (d_in in some fixed order: the
  // Gram does not depend on it). Without dilation from strided views of the
  // padded input and one copy; with dilation by im2col, which LibTorch 1.13
  // runs ~1.5× slower on CPU (cnn conv2 at B = 1024: 9 vs 6 ms).
  static torch::Tensor example_patches(const LayerCall& call, const Layer& l,
                                       int64_t group_size) {
    torch::Tensor x = call.input;
    const int64_t rows = x.size(0);
    const int64_t batch = rows / group_size;
    const auto& k = *l.options.kernel_size();
    const auto& s = *l.options.stride();
    const auto& d = *l.options.dilation();
    bool dilated = false;
    for (size_t i = 0; i < D; ++i) dilated = dilated || d[i] != 1;
    if (dilated) {
      std::vector<int64_t> kk(k.begin(), k.end()), ss(s.begin(), s.end()),
          dd(d.begin(), d.end()), pp = call.ints;
      if constexpr (D == 1) {
        x = x.unsqueeze(2);
        kk.insert(kk.begin(), 1);
        ss.insert(ss.begin(), 1);
        dd.insert(dd.begin(), 1);
        pp.insert(pp.begin(), 0);
      }
      auto cols = torch::im2col(x, kk, dd, pp, ss);  // [N, d_in, T]
      return by_example(cols, group_size).transpose(1, 2);
    }
    x = pad_symmetric(x, call.ints);
    // [N, C, T_1, ..., T_D, k_1, ..., k_D] → [N, T_1, ..., T_D, C, k...].
    for (size_t i = 0; i < D; ++i) {
      x = x.unfold(static_cast<int64_t>(2 + i), k[i], s[i]);
    }
    std::vector<int64_t> order = {0};
    for (size_t i = 0; i < D; ++i) order.push_back(static_cast<int64_t>(2 + i));
    order.push_back(1);
    for (size_t i = 0; i < D; ++i) {
      order.push_back(static_cast<int64_t>(2 + D + i));
    }
    return x.permute(order).reshape({batch, -1, l.weight[0].numel()});
  }

  // [N, C, T] rows → [B, C, K·T]: each example's K rows side by side (a
  // view for K = 1; the Gram bmm reads the transposed operand in place).
  static torch::Tensor by_example(const torch::Tensor& rows,
                                  int64_t group_size) {
    const int64_t n = rows.size(0);
    const int64_t c = rows.size(1);
    if (group_size == 1) return rows;
    return rows.view({n / group_size, group_size, c, -1})
        .transpose(1, 2)
        .reshape({n / group_size, c, -1});
  }

  static torch::Tensor ghost_norm(const LayerCall& call, const Layer& l,
                                  int64_t group_size) {
    const auto& g = call.grad_output;
    auto a = example_patches(call, l, group_size);  // [B, t, d_in]
    auto gg = by_example(g.reshape({g.size(0), g.size(1), -1}), group_size);
    auto gram_a = torch::bmm(a, a.transpose(1, 2));  // [B, t, t]
    auto gram_g = torch::bmm(gg.transpose(1, 2), gg);
    return (gram_a * gram_g).sum({1, 2});
  }
};

}  // namespace

std::shared_ptr<const LayerRule> make_conv1d_rule() {
  return std::make_shared<ConvRule<1, Conv1dImpl>>();
}
std::shared_ptr<const LayerRule> make_conv2d_rule() {
  return std::make_shared<ConvRule<2, Conv2dImpl>>();
}

}  // namespace dptrain::dp::detail
