#pragma once
// What the convolution rules share (private to dp_clipping):
// conv_rule.cpp (Conv1d, Conv2d, and the materialised per-example weight
// gradients and batch weight gradient that WSConv2d also uses),
// ws_conv_rule.cpp (WSConv2d), conv_kernels_cpu.cpp (its fused CPU kernels)
// and conv_cost_model.cpp (the route choice).

#include <torch/torch.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "builtin_rules.h"
#include "conv_cost_model.h"
#include "dptrain/dp/layers/conv.h"

namespace dptrain::dp::detail {

// Parameter slots of the convolution rules: the order of
// LayerRule::parameters, i.e. the index into `needed`, `norms`,
// `per_example`, `row_weights` and `sums`. kGainSlot is WSConv2d's only.
constexpr size_t kWeightSlot = 0;
constexpr size_t kBiasSlot = 1;
constexpr size_t kGainSlot = 2;

// torch::convolution_backward returns (grad_input, grad_weight, grad_bias);
// the rules ask for grad_weight only.
constexpr size_t kConvBackwardWeight = 1;
inline constexpr std::array<bool, 3> kWeightGradOnly = {false, true, false};

inline bool all_true(const torch::Tensor& t) { return t.all().item<bool>(); }

// Per-row bias gradients [N, out]: G summed over positions.
inline torch::Tensor bias_rows(const LayerCall& call) {
  const auto& g = call.grad_output;
  return g.reshape({g.size(0), g.size(1), -1}).sum(2);  // [N, out]
}

// The bias's per-example gradients (its K rows summed) and their squared
// norms, into the bias slot.
inline void bias_norms(const LayerCall& call, int64_t group_size,
                       std::vector<torch::Tensor>& norms,
                       std::vector<torch::Tensor>& per_example) {
  per_example[kBiasSlot] = group_sum(bias_rows(call), group_size);
  norms[kBiasSlot] = per_example[kBiasSlot].pow(2).sum(1);
}

// Σ_r w_r · (bias gradient of row r): a [1, rows] × [rows, out] product.
inline torch::Tensor bias_weighted_sum(const LayerCall& call,
                                       const torch::Tensor& row_weights) {
  const auto& g = call.grad_output;
  return row_weights.to(g.dtype())
      .view({1, g.size(0)})
      .mm(bias_rows(call))
      .view({-1});
}

// x [N, C, spatial...] zero-padded by call.ints on both sides of each
// spatial dimension (the padding the op was given); x itself when all 0.
inline torch::Tensor pad_symmetric(const torch::Tensor& x,
                                   const std::vector<int64_t>& ints) {
  std::vector<int64_t> pads;  // last dimension first
  bool any = false;
  for (size_t i = ints.size(); i-- > 0;) {
    pads.push_back(ints[i]);
    pads.push_back(ints[i]);
    any = any || ints[i] != 0;
  }
  return any ? torch::constant_pad_nd(x, pads, 0) : x;
}

// Is the layer pointwise (1×1 kernel, no padding, one group)?
template <size_t D, typename Layer>
bool is_pointwise(const LayerCall& call, const Layer& l) {
  if (l.options.groups() != 1) return false;
  for (size_t i = 0; i < D; ++i) {
    if ((*l.options.kernel_size())[i] != 1 || call.ints[i] != 0) return false;
  }
  return true;
}

// The cost model's materialised route of a call (Pointwise): kGrouped
// unless the layer is pointwise.
template <size_t D, typename Layer>
Pointwise pointwise_route(const LayerCall& call, const Layer& l) {
  if (!is_pointwise<D>(call, l)) return Pointwise::kGrouped;
  // The output gradient's shape is the output's (the output before the
  // backward, when a rule asks at record time).
  const auto& g = call.grad_output.defined() ? call.grad_output : call.output;
  const int64_t t_row = g.numel() == 0 ? 0 : g[0][0].numel();
  return choose_pointwise_route(t_row, call.input.size(1), g.size(1));
}

// Route names (LayerRule::routes, LayerCall::route) of the convolution
// rules: "ghost", and the materialised "grouped", "loop" and "bmm".
inline constexpr const char* kGhostRoute = "ghost";
inline const char* route_name(Pointwise route) {
  switch (route) {
    case Pointwise::kLoop:
      return "loop";
    case Pointwise::kBmm:
      return "bmm";
    case Pointwise::kGrouped:
      break;
  }
  return "grouped";
}

// The materialised route that call.route names; the cost model's when it
// names none (empty, ghost) or one the layer cannot take.
template <size_t D, typename Layer>
Pointwise materialised_route(const LayerCall& call, const Layer& l) {
  if (call.route == route_name(Pointwise::kGrouped)) return Pointwise::kGrouped;
  if (is_pointwise<D>(call, l)) {
    for (auto route : {Pointwise::kLoop, Pointwise::kBmm}) {
      if (call.route == route_name(route)) return route;
    }
  }
  return pointwise_route<D>(call, l);
}

// The materialised routes a call may take, the cost model's first: kGrouped,
// and kLoop and kBmm for pointwise layers.
template <size_t D, typename Layer>
std::vector<std::string> materialised_routes(const LayerCall& call,
                                             const Layer& l) {
  const Pointwise chosen = pointwise_route<D>(call, l);
  std::vector<std::string> routes = {route_name(chosen)};
  if (!is_pointwise<D>(call, l)) return routes;
  for (auto route : {Pointwise::kGrouped, Pointwise::kLoop, Pointwise::kBmm}) {
    if (route != chosen) routes.emplace_back(route_name(route));
  }
  return routes;
}

// Offers the ghost route among `routes`: first when the cost model picks it
// (`cheaper`), last when only its memory fits (`fits`), not at all else.
inline void offer_ghost(std::vector<std::string>& routes, bool cheaper,
                        bool fits) {
  if (cheaper) {
    routes.insert(routes.begin(), kGhostRoute);
  } else if (fits) {
    routes.emplace_back(kGhostRoute);
  }
}

// Does the call take the ghost route: call.route says so, or (no route
// set) the cost model's `cheaper`?
inline bool takes_ghost(const LayerCall& call, bool cheaper) {
  return call.route.empty() ? cheaper : call.route == kGhostRoute;
}

// Per-example (group-summed) gradients of the convolution's weight
// [B, out, in/groups, k...] by one grouped convolution_backward (or, for
// pointwise layers, the route of materialised_route). conv_rule.cpp;
// instantiated for Conv1dImpl, Conv2dImpl and WSConv2dImpl.
template <size_t D, typename Layer>
torch::Tensor per_example_weight(const LayerCall& call, const Layer& l,
                                 int64_t group_size);

// Σ_r row_weight[r]·∇_r W: one batch weight gradient with G scaled per row
// (the non-private weight gradient's cost). conv_rule.cpp; instantiated as
// per_example_weight.
template <size_t D, typename Layer>
torch::Tensor weighted_weight_grad(const LayerCall& call, const Layer& l,
                                   const torch::Tensor& row_weight);

extern template torch::Tensor per_example_weight<1, Conv1dImpl>(
    const LayerCall&, const Conv1dImpl&, int64_t);
extern template torch::Tensor per_example_weight<2, Conv2dImpl>(
    const LayerCall&, const Conv2dImpl&, int64_t);
extern template torch::Tensor per_example_weight<2, WSConv2dImpl>(
    const LayerCall&, const WSConv2dImpl&, int64_t);
extern template torch::Tensor weighted_weight_grad<1, Conv1dImpl>(
    const LayerCall&, const Conv1dImpl&, const torch::Tensor&);
extern template torch::Tensor weighted_weight_grad<2, Conv2dImpl>(
    const LayerCall&, const Conv2dImpl&, const torch::Tensor&);
extern template torch::Tensor weighted_weight_grad<2, WSConv2dImpl>(
    const LayerCall&, const WSConv2dImpl&, const torch::Tensor&);

}  // namespace dptrain::dp::detail
