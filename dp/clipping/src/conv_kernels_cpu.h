#pragma once
// Fused CPU kernels for WSConv2d on per-example cotangents x = dŴ [B, out,
// n] (conv_kernels_cpu.cpp): one sweep over x where ws_norms' and
// ws_backward's tensor expressions (ws_conv_rule.cpp) make five to twelve
// (and allocate [B, |W|] temporaries), with the channel statistics of W
// (mean, s, active) computed per row on the fly. Sums are in double, except
// the norms' partial sums over blocks of kNormBlock (512) elements, which
// are in x's dtype so that they vectorise. Used when x and W are CPU tensors of
// one floating dtype (fused_ws_applicable); other devices take the expressions.

#include <ATen/core/Tensor.h>

#include "dptrain/dp/layers/conv.h"

namespace dptrain::dp::detail {

bool fused_ws_applicable(const torch::Tensor& x, const WSConv2dImpl& layer);

// Per example b and channel o: contrib[b, o] = (gain_o/s_o)²·max(0, ‖x‖² −
// (Σx)²/n − active·(x·c)²/s²) (double) and d_gain[b, o] = x·c/s (x's dtype);
// see ws_norms.
void fused_ws_norms(const torch::Tensor& x, const WSConv2dImpl& layer,
                    torch::Tensor& contrib, torch::Tensor& d_gain);

// Σ_b f_b·x_b mapped through the standardisation backward (ws_backward of the
// weighted sum, which is linear in dŴ): d_w [out, ...] and d_gain [out, 1, 1,
// 1] for factors f [B].
void fused_ws_weighted_sum(const torch::Tensor& x, const torch::Tensor& f,
                           const WSConv2dImpl& layer, torch::Tensor& d_w,
                           torch::Tensor& d_gain);

}  // namespace dptrain::dp::detail
