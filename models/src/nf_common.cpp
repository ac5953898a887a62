#include "dptrain/models/nf_common.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace dptrain::models {

SqueezeExciteImpl::SqueezeExciteImpl(int64_t in_channels, int64_t out_channels,
                                     double ratio) {
  if (!(ratio > 0.0)) {
    throw std::invalid_argument("SqueezeExcite: ratio must be > 0, got " +
                                std::to_string(ratio));
  }
  const int64_t hidden = hidden_channels(in_channels, ratio);
  fc0 = register_module("fc0", dp::Linear(in_channels, hidden));
  fc1 = register_module("fc1", dp::Linear(hidden, out_channels));
}

int64_t SqueezeExciteImpl::hidden_channels(int64_t in_channels, double ratio) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(
                                  static_cast<double>(in_channels) * ratio)));
}

torch::Tensor SqueezeExciteImpl::forward(const torch::Tensor& x) {
  auto h = fc1(torch::relu(fc0(x.mean({2, 3}))));
  return torch::sigmoid(h).unsqueeze(-1).unsqueeze(-1);
}

torch::Tensor stochastic_depth(const torch::Tensor& x, double rate,
                               bool training) {
  if (!(rate >= 0.0 && rate < 1.0)) {
    throw std::invalid_argument(
        "stochastic depth rate must be in [0, 1), got " + std::to_string(rate));
  }
  if (!training || rate == 0.0) return x;
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  auto keep = torch::floor(1.0 - rate + torch::rand(shape, x.options()));
  return x * keep;
}

torch::Tensor max_pool_same(const torch::Tensor& x, int64_t window,
                            int64_t stride) {
  std::vector<int64_t> pad;  // F.pad order: left, right, top, bottom
  for (int64_t d : {3, 2}) {
    const int64_t size = x.size(d);
    const int64_t out = (size + stride - 1) / stride;
    const int64_t total =
        std::max<int64_t>((out - 1) * stride + window - size, 0);
    pad.push_back(total / 2);
    pad.push_back(total - total / 2);
  }
  namespace F = torch::nn::functional;
  auto padded = F::pad(x, F::PadFuncOptions(pad).value(
                              -std::numeric_limits<double>::infinity()));
  return F::max_pool2d(padded, F::MaxPool2dFuncOptions(window).stride(stride));
}

torch::Tensor avg_pool_2x2_same(const torch::Tensor& x) {
  // ceil_mode keeps the partial last window; with zero padding torch divides
  // by the in-bounds count, which is hk.avg_pool's SAME behaviour.
  namespace F = torch::nn::functional;
  return F::avg_pool2d(
      x, F::AvgPool2dFuncOptions(2).stride(2).ceil_mode(true).count_include_pad(
             false));
}

}  // namespace dptrain::models
