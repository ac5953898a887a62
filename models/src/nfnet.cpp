#include "dptrain/models/nfnet.h"

#include <torch/torch.h>

#include <cctype>
#include <cmath>
#include <stdexcept>
#include <string>

#include "nf_detail.h"
#include "ws_conv.h"

namespace dptrain::models {
namespace {

using detail::ws_conv;
using detail::ws_conv_count;

void nfnet_fail(const std::string& what) { detail::nf_fail("NFNet", what); }

}  // namespace

void NFNetOptions::validate() const {
  detail::check_nf_stage_lists("NFNet", depths_, widths_);
  if (stem_channels_.size() != 3) {
    nfnet_fail("stem_channels must have 3 entries, got " +
               std::to_string(stem_channels_.size()));
  }
  for (auto c : stem_channels_) {
    if (c < 1)
      nfnet_fail("stem_channels entries must be >= 1, got " +
                 std::to_string(c));
  }
  if (group_width_ < 1)
    nfnet_fail("group_width must be >= 1, got " + std::to_string(group_width_));
  if (widths_[0] < 2)
    nfnet_fail("widths[0] must be >= 2, got " + std::to_string(widths_[0]));
  for (size_t s = 0; s < 4; ++s) {
    if (depths_[s] < 1)
      nfnet_fail("depths entries must be >= 1, got " +
                 std::to_string(depths_[s]));
    const auto w = static_cast<int64_t>(
        std::floor(static_cast<double>(widths_[s]) * expansion_));
    if (w / group_width_ < 1) {
      nfnet_fail("widths[" + std::to_string(s) +
                 "] · expansion must be >= group_width " +
                 std::to_string(group_width_) + ", got width " +
                 std::to_string(widths_[s]));
    }
  }
  if (!(se_ratio_ > 0.0))
    nfnet_fail("se_ratio must be > 0, got " + std::to_string(se_ratio_));
  if (final_conv_multiplier_ < 1) {
    nfnet_fail("final_conv_multiplier must be >= 1, got " +
               std::to_string(final_conv_multiplier_));
  }
  detail::check_nf_head("NFNet", num_classes_, in_channels_, stochastic_depth_,
                        dropout_);
}

NFNetOptions nfnet_variant(const std::string& variant) {
  std::string v = variant;
  for (auto& ch : v)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  // {depths, train size, test size} of the published F-series.
  struct Row {
    const char* name;
    std::vector<int64_t> depths;
    int64_t train, test;
  };
  static const Row rows[] = {
      {"F0", {1, 2, 6, 3}, 192, 256},    {"F1", {2, 4, 12, 6}, 224, 320},
      {"F2", {3, 6, 18, 9}, 256, 352},   {"F3", {4, 8, 24, 12}, 320, 416},
      {"F4", {5, 10, 30, 15}, 384, 512}, {"F5", {6, 12, 36, 18}, 416, 544},
      {"F6", {7, 14, 42, 21}, 448, 576}, {"F7", {8, 16, 48, 24}, 480, 608},
  };
  for (const auto& row : rows) {
    if (v == row.name) {
      return NFNetOptions()
          .depths(row.depths)
          .train_image_size(row.train)
          .test_image_size(row.test);
    }
  }
  throw std::invalid_argument("NFNet variant must be F0 ... F7, got '" +
                              variant + "'");
}

int64_t NFNetBlockImpl::bottleneck_width(int64_t out_channels,
                                         const NFNetOptions& options) {
  const auto w = static_cast<int64_t>(
      std::floor(static_cast<double>(out_channels) * options.expansion()));
  return options.group_width() * (w / options.group_width());
}

NFNetBlockImpl::NFNetBlockImpl(int64_t in_channels, int64_t out_channels,
                               int64_t stride_, double beta_,
                               double stochastic_depth_rate_,
                               const NFNetOptions& options)
    : beta(beta_),
      alpha(options.alpha()),
      stochastic_depth_rate(stochastic_depth_rate_),
      stride(stride_),
      activation(options.activation()) {
  const int64_t width = bottleneck_width(out_channels, options);
  const int64_t groups = width / options.group_width();
  conv0 = register_module("conv0", ws_conv(in_channels, width, 1, 1));
  conv1 = register_module("conv1", ws_conv(width, width, 3, stride, groups));
  conv1b = register_module("conv1b", ws_conv(width, width, 3, 1, groups));
  conv2 = register_module("conv2", ws_conv(width, out_channels, 1, 1));
  if (stride > 1 || in_channels != out_channels) {
    conv_shortcut = register_module("conv_shortcut",
                                    ws_conv(in_channels, out_channels, 1, 1));
  }
  se = register_module(
      "se", SqueezeExcite(out_channels, out_channels, options.se_ratio()));
  skip_gain = register_module("skip_gain",
                              dp::Scale(dp::ElementwiseOptions({}).init(0.0)));
}

torch::Tensor NFNetBlockImpl::forward(const torch::Tensor& x) {
  const auto out = activate(x, activation) * beta;
  torch::Tensor shortcut;
  if (stride > 1) {
    shortcut = avg_pool_2x2_same(out);
    if (conv_shortcut) shortcut = conv_shortcut(shortcut);
  } else {
    shortcut = conv_shortcut ? conv_shortcut(out) : x;
  }
  auto r = conv0(out);
  r = conv1(activate(r, activation));
  r = conv1b(activate(r, activation));
  r = conv2(activate(r, activation));
  r = se(r) * 2 * r;
  r = stochastic_depth(r, stochastic_depth_rate, is_training());
  return skip_gain(r) * alpha + shortcut;
}

NFNetImpl::NFNetImpl(NFNetOptions options_)
    : ImageClassifier("NFNet", options_.in_channels()),
      options(std::move(options_)) {
  options.validate();
  const auto& sc = options.stem_channels();
  const int64_t stem_in[4] = {options.in_channels(), sc[0], sc[1], sc[2]};
  const int64_t stem_out[4] = {sc[0], sc[1], sc[2], options.widths()[0] / 2};
  const int64_t stem_stride[4] = {2, 1, 1, 2};
  // A plain container so the paths read stem.conv0 … stem.conv3.
  auto stem_module =
      register_module("stem", std::make_shared<torch::nn::Module>("NFNetStem"));
  for (size_t i = 0; i < 4; ++i) {
    stem.push_back(ws_conv(stem_in[i], stem_out[i], 3, stem_stride[i]));
    stem_module->register_module("conv" + std::to_string(i), stem.back());
  }

  auto list = register_module("blocks", torch::nn::ModuleList());
  const int64_t channels =
      detail::build_nf_blocks(stem_out[3], options, *list, blocks);
  const int64_t final_channels = options.final_conv_multiplier() * channels;
  final_conv =
      register_module("final_conv", ws_conv(channels, final_channels, 1, 1));
  register_classifier(final_channels, options.num_classes(),
                      HeadInit::kNormal001);
}

torch::Tensor NFNetImpl::forward(const torch::Tensor& images) {
  check_input(images);
  auto h = images;
  for (size_t i = 0; i < stem.size(); ++i) {
    h = stem[i](h);
    if (i + 1 < stem.size()) h = activate(h, options.activation());
  }
  for (auto& block : blocks) h = block(h);
  return classify_pooled(activate(final_conv(h), options.activation()),
                         options.dropout());
}

int64_t nfnet_parameter_count(const NFNetOptions& options) {
  options.validate();
  const auto& sc = options.stem_channels();
  int64_t c = options.widths()[0] / 2;
  int64_t total = ws_conv_count(options.in_channels(), sc[0], 3) +
                  ws_conv_count(sc[0], sc[1], 3) +
                  ws_conv_count(sc[1], sc[2], 3) + ws_conv_count(sc[2], c, 3);
  for (size_t s = 0; s < 4; ++s) {
    const int64_t out = options.widths()[s];
    const int64_t w = NFNetBlockImpl::bottleneck_width(out, options);
    const int64_t g = w / options.group_width();
    const int64_t h =
        SqueezeExciteImpl::hidden_channels(out, options.se_ratio());
    for (int64_t b = 0; b < options.depths()[s]; ++b) {
      total += ws_conv_count(c, w, 1) + 2 * ws_conv_count(w, w, 3, g) +
               ws_conv_count(w, out, 1) + 1 + (out * h + h) + (h * out + out);
      if ((b == 0 && s > 0) || c != out) total += ws_conv_count(c, out, 1);
      c = out;
    }
  }
  const int64_t f = options.final_conv_multiplier() * c;
  return total + ws_conv_count(c, f, 1) + f * options.num_classes() +
         options.num_classes();
}

}  // namespace dptrain::models
