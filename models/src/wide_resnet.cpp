#include "dptrain/models/wide_resnet.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

#include "ws_conv.h"

namespace dptrain::models {
namespace {

std::string wrn_name(const WideResNetOptions& o) {
  return "WideResNet(" + std::to_string(o.depth()) + ", " +
         std::to_string(o.width()) + ")";
}

using detail::ws_conv;
using detail::ws_conv_count;

dp::GroupNorm group_norm(int64_t groups, int64_t channels) {
  return dp::GroupNorm(dp::GroupNormOptions(groups, channels));
}

}  // namespace

void WideResNetOptions::validate() const {
  const std::string who = wrn_name(*this);
  if (depth_ < 10 || (depth_ - 4) % 6 != 0) {
    throw std::invalid_argument(who +
                                ": depth must be 6n + 4 with n >= 1, got " +
                                std::to_string(depth_));
  }
  if (width_ < 1) {
    throw std::invalid_argument(who + ": width must be >= 1, got " +
                                std::to_string(width_));
  }
  if (num_classes_ < 1) {
    throw std::invalid_argument(who + ": num_classes must be >= 1, got " +
                                std::to_string(num_classes_));
  }
  if (in_channels_ < 1) {
    throw std::invalid_argument(who + ": in_channels must be >= 1, got " +
                                std::to_string(in_channels_));
  }
  if (norm_groups_ < 1 || stem_channels_ < 1 ||
      stem_channels_ % norm_groups_ != 0 ||
      (stem_channels_ * width_) % norm_groups_ != 0) {
    throw std::invalid_argument(
        who +
        ": norm_groups must divide stem_channels and stem_channels * "
        "width, got norm_groups " +
        std::to_string(norm_groups_) + ", stem_channels " +
        std::to_string(stem_channels_));
  }
  if (!(dropout_ >= 0.0 && dropout_ < 1.0)) {
    throw std::invalid_argument(who + ": dropout must be in [0, 1), got " +
                                std::to_string(dropout_));
  }
}

WideResNetBlockImpl::WideResNetBlockImpl(int64_t in_channels,
                                         int64_t out_channels, int64_t stride,
                                         bool projection,
                                         const WideResNetOptions& options)
    : activation(options.activation()) {
  const int64_t g = options.norm_groups();
  norm0 = register_module("norm0", group_norm(g, in_channels));
  conv0 =
      register_module("conv0", ws_conv(in_channels, out_channels, 3, stride));
  norm1 = register_module("norm1", group_norm(g, out_channels));
  conv1 = register_module("conv1", ws_conv(out_channels, out_channels, 3, 1));
  if (projection) {
    shortcut_norm =
        register_module("shortcut_norm", group_norm(g, in_channels));
    shortcut_conv = register_module(
        "shortcut_conv", ws_conv(in_channels, out_channels, 1, stride));
  }
}

torch::Tensor WideResNetBlockImpl::forward(const torch::Tensor& x) {
  const auto a = activate(x, activation);
  const auto shortcut = shortcut_conv ? shortcut_conv(shortcut_norm(a)) : x;
  auto h = conv0(norm0(a));
  h = conv1(norm1(activate(h, activation)));
  return h + shortcut;
}

WideResNetImpl::WideResNetImpl(WideResNetOptions options_)
    : ImageClassifier("WideResNet", options_.in_channels()),
      options(std::move(options_)) {
  options.validate();
  int64_t channels = options.stem_channels();
  stem =
      register_module("stem", ws_conv(options.in_channels(), channels, 3, 1));
  auto stages = register_module("stages", torch::nn::ModuleList());
  const int64_t n = options.blocks_per_stage();
  for (int64_t s = 0; s < 3; ++s) {
    const int64_t width = (options.stem_channels() * options.width()) << s;
    auto stage = torch::nn::ModuleList();
    blocks.emplace_back();
    for (int64_t b = 0; b < n; ++b) {
      WideResNetBlock block(channels, width, b == 0 && s > 0 ? 2 : 1, b == 0,
                            options);
      stage->push_back(block);
      blocks.back().push_back(block);
      channels = width;
    }
    stages->push_back(stage);
  }
  final_norm = register_module("final_norm",
                               group_norm(options.norm_groups(), channels));
  register_classifier(channels, options.num_classes(), HeadInit::kFanIn);
}

torch::Tensor WideResNetImpl::forward(const torch::Tensor& images) {
  check_input(images);
  auto h = stem(images);
  for (auto& stage : blocks) {
    for (auto& block : stage) h = block(h);
  }
  h = final_norm(activate(h, options.activation()));
  return classify_pooled(h, options.dropout());
}

int64_t wide_resnet_parameter_count(const WideResNetOptions& options) {
  options.validate();
  int64_t c = options.stem_channels();
  int64_t total = ws_conv_count(options.in_channels(), c, 3);
  for (int64_t s = 0; s < 3; ++s) {
    const int64_t w = (options.stem_channels() * options.width()) << s;
    for (int64_t b = 0; b < options.blocks_per_stage(); ++b) {
      if (b == 0) total += 2 * c + ws_conv_count(c, w, 1);
      total += 2 * c + ws_conv_count(c, w, 3) + 2 * w + ws_conv_count(w, w, 3);
      c = w;
    }
  }
  return total + 2 * c + c * options.num_classes() + options.num_classes();
}

}  // namespace dptrain::models
