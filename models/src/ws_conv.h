// The weight-standardised convolution as the WRN, NF-ResNet and NFNet build
// it (TF "SAME" padding), and its parameter count. Private to models/src.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "dptrain/dp/layers/conv.h"

namespace dptrain::models::detail {

/// WSConv2d(in → out, kernel×kernel, stride, groups), padding SAME.
inline dp::WSConv2d ws_conv(int64_t in, int64_t out, int64_t kernel,
                            int64_t stride, int64_t groups = 1) {
  // Not chained: the setters return ConvOptions<2>&, slicing WSConv2dOptions.
  dp::WSConv2dOptions o(in, out, kernel);
  o.stride(stride);
  o.groups(groups);
  o.padding(torch::kSame);
  return dp::WSConv2d(o);
}

/// Parameters of ws_conv(in, out, k, ·, groups): the weight, a gain and a
/// bias per output channel.
inline int64_t ws_conv_count(int64_t in, int64_t out, int64_t k,
                             int64_t groups = 1) {
  return k * k * (in / groups) * out + 2 * out;
}

}  // namespace dptrain::models::detail
