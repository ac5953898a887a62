#pragma once
/// The channel statistics of WSConv2d's weight standardisation, shared by
/// the layer's forward (conv.cpp) and the WSConv2d clipping rule
/// (dp/clipping/src/ws_conv_rule.cpp).

#include <ATen/core/Tensor.h>

namespace dptrain::dp::detail {

/// Per-output-channel statistics of a WSConv2d weight W [out, in/groups, kh,
/// kw] (n = fan-in = W[0].numel()), each [out, 1, 1, 1] in W's dtype: mean
/// μ, centered W − μ, n_var = n·var(W) (biased), s = √max(n_var, eps) and
/// active = [n_var ≥ eps]. The one tensor definition of these quantities;
/// the rule's fused CPU kernels recompute them per row in double on the fly
/// (channel_stats, dp/clipping/src/conv_kernels_cpu.cpp).
struct WSChannelStats {
  torch::Tensor mean;
  torch::Tensor centered;
  torch::Tensor n_var;
  torch::Tensor s;
  torch::Tensor active;
};
WSChannelStats ws_channel_stats(const torch::Tensor& weight, double eps);

}  // namespace dptrain::dp::detail
