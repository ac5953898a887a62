#include "dptrain/models/nf_resnet.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "nf_detail.h"
#include "ws_conv.h"

namespace dptrain::models {
namespace {

using detail::ws_conv;
using detail::ws_conv_count;

void nf_resnet_fail(const std::string& what) {
  detail::nf_fail("NFResNet", what);
}

}  // namespace

void NFResNetOptions::validate() const {
  detail::check_nf_stage_lists("NFResNet", depths_, widths_);
  for (size_t s = 0; s < 4; ++s) {
    if (depths_[s] < 1)
      nf_resnet_fail("depths entries must be >= 1, got " +
                     std::to_string(depths_[s]));
    if (widths_[s] < 1 ||
        static_cast<int64_t>(std::floor(static_cast<double>(widths_[s]) *
                                        bottleneck_ratio_)) < 1) {
      nf_resnet_fail("widths[" + std::to_string(s) +
                     "] · bottleneck_ratio must be >= 1, got width " +
                     std::to_string(widths_[s]));
    }
  }
  if (stem_channels_ < 1)
    nf_resnet_fail("stem_channels must be >= 1, got " +
                   std::to_string(stem_channels_));
  detail::check_nf_head("NFResNet", num_classes_, in_channels_,
                        stochastic_depth_, dropout_);
  if (use_se_ && !(se_ratio_ > 0.0))
    nf_resnet_fail("se_ratio must be > 0, got " + std::to_string(se_ratio_));
}

NFResNetOptions nf_resnet_variant(int64_t depth) {
  NFResNetOptions o;
  switch (depth) {
    case 50:
      return o.depths({3, 4, 6, 3});
    case 101:
      return o.depths({3, 4, 23, 3});
    case 152:
      return o.depths({3, 8, 36, 3});
    case 200:
      return o.depths({3, 24, 36, 3});
    default:
      throw std::invalid_argument(
          "NF-ResNet depth must be 50, 101, 152 or 200, got " +
          std::to_string(depth));
  }
}

NFResNetBlockImpl::NFResNetBlockImpl(int64_t in_channels, int64_t out_channels,
                                     int64_t stride, double beta_,
                                     double stochastic_depth_rate_,
                                     const NFResNetOptions& options)
    : beta(beta_),
      alpha(options.alpha()),
      stochastic_depth_rate(stochastic_depth_rate_),
      activation(options.activation()) {
  const auto width = static_cast<int64_t>(std::floor(
      static_cast<double>(out_channels) * options.bottleneck_ratio()));
  conv0 = register_module("conv0", ws_conv(in_channels, width, 1, 1));
  conv1 = register_module("conv1", ws_conv(width, width, 3, stride));
  conv2 = register_module("conv2", ws_conv(width, out_channels, 1, 1));
  if (stride > 1 || in_channels != out_channels) {
    conv_shortcut = register_module(
        "conv_shortcut", ws_conv(in_channels, out_channels, 1, stride));
  }
  if (options.use_se()) {
    se = register_module(
        "se", SqueezeExcite(out_channels, out_channels, options.se_ratio()));
  }
  skip_gain = register_module(
      "skip_gain",
      dp::Scale(dp::ElementwiseOptions({}).init(options.skip_init_gain())));
}

torch::Tensor NFResNetBlockImpl::forward(const torch::Tensor& x) {
  const auto out = activate(x, activation) * beta;
  const auto shortcut = conv_shortcut ? conv_shortcut(out) : x;
  auto r = conv0(out);
  r = conv1(activate(r, activation));
  r = conv2(activate(r, activation));
  if (se) r = se(r) * 2 * r;
  r = stochastic_depth(r, stochastic_depth_rate, is_training());
  return skip_gain(r) * alpha + shortcut;
}

NFResNetImpl::NFResNetImpl(NFResNetOptions options_)
    : ImageClassifier("NFResNet", options_.in_channels()),
      options(std::move(options_)) {
  options.validate();
  int64_t channels = options.stem_channels();
  stem =
      register_module("stem", ws_conv(options.in_channels(), channels, 7, 2));
  auto list = register_module("blocks", torch::nn::ModuleList());
  channels = detail::build_nf_blocks(channels, options, *list, blocks);
  register_classifier(channels, options.num_classes(), HeadInit::kNormal001);
}

torch::Tensor NFResNetImpl::forward(const torch::Tensor& images) {
  check_input(images);
  auto h = max_pool_same(stem(images), 3, 2);
  for (auto& block : blocks) h = block(h);
  return classify_pooled(activate(h, options.activation()), options.dropout());
}

int64_t nf_resnet_parameter_count(const NFResNetOptions& options) {
  options.validate();
  int64_t c = options.stem_channels();
  int64_t total = ws_conv_count(options.in_channels(), c, 7);
  for (size_t s = 0; s < 4; ++s) {
    const int64_t out = options.widths()[s];
    const auto w = static_cast<int64_t>(
        std::floor(static_cast<double>(out) * options.bottleneck_ratio()));
    for (int64_t b = 0; b < options.depths()[s]; ++b) {
      total += ws_conv_count(c, w, 1) + ws_conv_count(w, w, 3) +
               ws_conv_count(w, out, 1) + 1;
      if ((b == 0 && s > 0) || c != out) total += ws_conv_count(c, out, 1);
      if (options.use_se()) {
        const int64_t h =
            SqueezeExciteImpl::hidden_channels(out, options.se_ratio());
        total += out * h + h + h * out + out;
      }
      c = out;
    }
  }
  return total + c * options.num_classes() + options.num_classes();
}

}  // namespace dptrain::models
