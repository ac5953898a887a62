#include "dptrain/models/nf_common.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "nf_detail.h"

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

namespace detail {

void nf_fail(const std::string& model, const std::string& what) {
  throw std::invalid_argument(model + ": " + what);
}

void check_nf_stage_lists(const std::string& model,
                          const std::vector<int64_t>& depths,
                          const std::vector<int64_t>& widths) {
  if (depths.size() != 4 || widths.size() != 4) {
    nf_fail(model, "depths and widths must have 4 entries, got " +
                       std::to_string(depths.size()) + " and " +
                       std::to_string(widths.size()));
  }
}

void check_nf_head(const std::string& model, int64_t num_classes,
                   int64_t in_channels, double stochastic_depth,
                   double dropout) {
  if (num_classes < 1) {
    nf_fail(model,
            "num_classes must be >= 1, got " + std::to_string(num_classes));
  }
  if (in_channels < 1) {
    nf_fail(model,
            "in_channels must be >= 1, got " + std::to_string(in_channels));
  }
  if (!(stochastic_depth >= 0.0 && stochastic_depth < 1.0)) {
    nf_fail(model, "stochastic_depth must be in [0, 1), got " +
                       std::to_string(stochastic_depth));
  }
  if (!(dropout >= 0.0 && dropout < 1.0)) {
    nf_fail(model, "dropout must be in [0, 1), got " + std::to_string(dropout));
  }
}

std::vector<NfBlockPlan> nf_block_plan(int64_t stem_channels,
                                       const std::vector<int64_t>& depths,
                                       const std::vector<int64_t>& widths,
                                       double alpha, double stochastic_depth) {
  int64_t num_blocks = 0;
  for (auto d : depths) num_blocks += d;
  std::vector<NfBlockPlan> plan;
  int64_t channels = stem_channels;
  double expected_std = 1.0;
  for (std::size_t s = 0; s < depths.size(); ++s) {
    for (int64_t b = 0; b < depths[s]; ++b) {
      const auto index = static_cast<int64_t>(plan.size());
      const double rate = stochastic_depth * static_cast<double>(index) /
                          static_cast<double>(num_blocks);
      plan.push_back({channels, widths[s], b == 0 && s > 0 ? 2 : 1,
                      1.0 / expected_std, rate});
      channels = widths[s];
      // Variance resets at each stage's transition block, then grows by α².
      if (b == 0) expected_std = 1.0;
      expected_std = std::sqrt(expected_std * expected_std + alpha * alpha);
    }
  }
  return plan;
}

}  // namespace detail

}  // namespace dptrain::models
