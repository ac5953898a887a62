#include "dptrain/models/unet.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace dptrain::models {
namespace {

[[noreturn]] void bad(const std::string& field, const std::string& what,
                      const std::string& value) {
  throw std::invalid_argument("UNet " + field + " " + what + ", got " + value);
}

std::string list(const std::vector<int64_t>& v) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
  out << "]";
  return out.str();
}

int64_t groups_for(int64_t channels, int64_t norm_groups) {
  // The largest count ≤ norm_groups that divides the width.
  int64_t g = std::min(norm_groups, channels);
  while (channels % g != 0) --g;
  return g;
}

dp::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return dp::Conv2d(dp::Conv2dOptions(in, out, 3).stride(stride).padding(1));
}

}  // namespace

void UNetConfig::validate() const {
  if (image_size < 1)
    bad("image_size", "must be >= 1", std::to_string(image_size));
  if (in_channels < 1)
    bad("in_channels", "must be >= 1", std::to_string(in_channels));
  if (num_classes < 1)
    bad("num_classes", "must be >= 1", std::to_string(num_classes));
  if (channels.empty() || std::any_of(channels.begin(), channels.end(),
                                      [](int64_t c) { return c < 1; })) {
    bad("channels", "must be one or more widths >= 1", list(channels));
  }
  if (blocks_per_level < 1) {
    bad("blocks_per_level", "must be >= 1", std::to_string(blocks_per_level));
  }
  const auto levels = static_cast<int64_t>(channels.size());
  if (image_size % (int64_t{1} << (levels - 1)) != 0) {
    bad("image_size",
        "must be divisible by 2^(levels-1) = " +
            std::to_string(int64_t{1} << (levels - 1)),
        std::to_string(image_size));
  }
  if (attention_heads < 1) {
    bad("attention_heads", "must be >= 1", std::to_string(attention_heads));
  }
  for (const int64_t l : attention_levels) {
    if (l < 0 || l >= levels) {
      bad("attention_levels",
          "must name levels in [0, " + std::to_string(levels - 1) + "]",
          list(attention_levels));
    }
    if (channels[static_cast<std::size_t>(l)] % attention_heads != 0) {
      bad("attention_heads",
          "must divide the width of attention level " + std::to_string(l),
          std::to_string(attention_heads));
    }
  }
  if (channels.back() % attention_heads != 0) {
    bad("attention_heads", "must divide the middle width",
        std::to_string(attention_heads));
  }
  if (embedding_dim < 0) {
    bad("embedding_dim", "must be >= 0 (0: 4 * channels[0])",
        std::to_string(embedding_dim));
  }
  if (channels.front() % 2 != 0) {
    bad("channels", "must start with an even width (the sinusoidal embedding)",
        list(channels));
  }
  if (norm_groups < 1)
    bad("norm_groups", "must be >= 1", std::to_string(norm_groups));
}

std::vector<std::string> unet_config_names() {
  return {"unet-dpdm", "unet-small", "unet-32", "unet-64"};
}

UNetConfig unet_config(const std::string& name) {
  UNetConfig c;
  c.name = name;
  if (name == "unet-dpdm") {
    return c;  // the defaults: DPDM's 28×28 network
  }
  if (name == "unet-small") {
    c.channels = {16, 32, 32};
    c.blocks_per_level = 1;
    return c;
  }
  if (name == "unet-32" || name == "unet-64") {
    c.image_size = name == "unet-32" ? 32 : 64;
    c.in_channels = 3;
    c.channels = {64, 128, 256, 256};
    c.attention_levels = {2, 3};  // 8×8 and 4×4, or 16×16 and 8×8
    c.attention_heads = 4;
    c.norm_groups = 32;
    return c;
  }
  std::string known;
  for (const auto& n : unet_config_names())
    known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown UNet '" + name + "' (known: " + known +
                              ")");
}

torch::Tensor sinusoidal_embedding(const torch::Tensor& noise_level,
                                   int64_t dim) {
  if (dim < 2 || dim % 2 != 0) {
    throw std::invalid_argument(
        "sinusoidal_embedding: dim must be even and >= 2, got " +
        std::to_string(dim));
  }
  const int64_t half = dim / 2;
  const auto options = noise_level.options();
  const auto freqs =
      torch::exp(-std::log(10000.0) * torch::arange(half, options) /
                 static_cast<double>(half));
  const auto args = noise_level.unsqueeze(1) * freqs.unsqueeze(0);
  return torch::cat({torch::cos(args), torch::sin(args)}, 1);
}

UNetResBlockImpl::UNetResBlockImpl(int64_t in_channels, int64_t out_channels,
                                   int64_t embedding_dim, int64_t norm_groups) {
  norm0 = register_module(
      "norm0",
      dp::GroupNorm(groups_for(in_channels, norm_groups), in_channels));
  conv0 = register_module("conv0", conv3x3(in_channels, out_channels));
  embedding_projection = register_module(
      "embedding_projection", dp::Linear(embedding_dim, out_channels));
  norm1 = register_module(
      "norm1",
      dp::GroupNorm(groups_for(out_channels, norm_groups), out_channels));
  conv1 = register_module("conv1", conv3x3(out_channels, out_channels));
  if (in_channels != out_channels) {
    skip = register_module(
        "skip", dp::Conv2d(dp::Conv2dOptions(in_channels, out_channels, 1)));
  }
}

torch::Tensor UNetResBlockImpl::forward(const torch::Tensor& x,
                                        const torch::Tensor& embedding) {
  auto h = conv0->forward(torch::silu(norm0->forward(x)));
  h = h + embedding_projection->forward(embedding).unsqueeze(-1).unsqueeze(-1);
  h = conv1->forward(torch::silu(norm1->forward(h)));
  return h + (skip ? skip->forward(x) : x);
}

UNetAttentionImpl::UNetAttentionImpl(int64_t channels, int64_t heads_,
                                     int64_t norm_groups)
    : heads(heads_) {
  norm = register_module(
      "norm", dp::GroupNorm(groups_for(channels, norm_groups), channels));
  qkv = register_module("qkv", dp::Linear(channels, 3 * channels));
  out = register_module("out", dp::Linear(channels, channels));
}

torch::Tensor UNetAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t d = c / heads;
  // [N, C, H, W] → [N, HW, C]: one image's positions attend to each other.
  const auto tokens = norm->forward(x).flatten(2).transpose(1, 2);
  const auto parts = qkv->forward(tokens).chunk(3, -1);
  auto split = [&](const torch::Tensor& t) {
    return t.reshape({n, h * w, heads, d})
        .transpose(1, 2);  // [N, heads, HW, d]
  };
  const auto q = split(parts[0]), k = split(parts[1]), v = split(parts[2]);
  const auto weights = torch::softmax(
      torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(d)),
      -1);
  const auto mixed =
      torch::matmul(weights, v).transpose(1, 2).reshape({n, h * w, c});
  return x + out->forward(mixed).transpose(1, 2).reshape({n, c, h, w});
}

UNetImpl::UNetImpl(UNetConfig config) : config_(std::move(config)) {
  config_.validate();
  const auto& ch = config_.channels;
  const auto levels = static_cast<int64_t>(ch.size());
  const int64_t e = config_.embedding_width();
  const int64_t g = config_.norm_groups;
  auto attends = [&](int64_t level) {
    return std::find(config_.attention_levels.begin(),
                     config_.attention_levels.end(),
                     level) != config_.attention_levels.end();
  };

  // One residual block (and its attention at attention levels) of a level.
  auto block = [&](const std::string& name, int64_t level, int64_t in,
                   int64_t out) {
    Stage s;
    s.block = register_module(name, UNetResBlock(in, out, e, g));
    if (attends(level)) {
      s.attention = register_module(
          name + "_attention", UNetAttention(out, config_.attention_heads, g));
    }
    return s;
  };

  embed0 = register_module("embed0", dp::Linear(ch.front(), e));
  embed1 = register_module("embed1", dp::Linear(e, e));
  class_embedding = register_module("class_embedding",
                                    dp::Embedding(config_.num_classes + 1, e));
  conv_in =
      register_module("conv_in", conv3x3(config_.in_channels, ch.front()));

  // Down path; `skips` holds the widths of the skip connections in order.
  std::vector<int64_t> skips = {ch.front()};
  int64_t width = ch.front();
  for (int64_t l = 0; l < levels; ++l) {
    const int64_t out = ch[static_cast<std::size_t>(l)];
    for (int64_t b = 0; b < config_.blocks_per_level; ++b) {
      down_.push_back(
          block("down" + std::to_string(l) + "_block" + std::to_string(b), l,
                width, out));
      width = out;
      skips.push_back(width);
    }
    if (l + 1 < levels) {
      Stage s;
      s.resample = register_module("down" + std::to_string(l) + "_downsample",
                                   conv3x3(width, width, 2));
      down_.push_back(s);
      skips.push_back(width);
    }
  }
  middle0_ = register_module("middle0", UNetResBlock(width, width, e, g));
  middle_attention_ = register_module(
      "middle_attention", UNetAttention(width, config_.attention_heads, g));
  middle1_ = register_module("middle1", UNetResBlock(width, width, e, g));

  // Up path: each block takes one skip connection, in reverse order.
  for (int64_t l = levels - 1; l >= 0; --l) {
    const int64_t out = ch[static_cast<std::size_t>(l)];
    for (int64_t b = 0; b <= config_.blocks_per_level; ++b) {
      const int64_t skip = skips.back();
      skips.pop_back();
      up_.push_back(
          block("up" + std::to_string(l) + "_block" + std::to_string(b), l,
                width + skip, out));
      width = out;
    }
    if (l > 0) {
      Stage s;
      s.resample = register_module("up" + std::to_string(l) + "_upsample",
                                   conv3x3(width, width));
      up_.push_back(s);
    }
  }
  norm_out =
      register_module("norm_out", dp::GroupNorm(groups_for(width, g), width));
  conv_out = register_module("conv_out", conv3x3(width, config_.in_channels));
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x,
                                const torch::Tensor& noise_level,
                                const torch::Tensor& labels) {
  const int64_t s = config_.image_size;
  if (x.dim() != 4 || x.size(1) != config_.in_channels || x.size(2) != s ||
      x.size(3) != s) {
    std::ostringstream msg;
    msg << "UNet '" << config_.name << "' expects images [N, "
        << config_.in_channels << ", " << s << ", " << s << "], got "
        << x.sizes();
    throw std::invalid_argument(msg.str());
  }
  const int64_t n = x.size(0);
  if (noise_level.dim() != 1 || noise_level.size(0) != n) {
    throw std::invalid_argument("UNet: noise_level must be [N] with N = " +
                                std::to_string(n));
  }
  if (labels.dim() != 1 || labels.size(0) != n ||
      labels.scalar_type() != torch::kLong) {
    throw std::invalid_argument("UNet: labels must be int64 [N] with N = " +
                                std::to_string(n));
  }
  if (n > 0 && (labels.min().item<int64_t>() < 0 ||
                labels.max().item<int64_t>() > config_.num_classes)) {
    throw std::invalid_argument(
        "UNet: labels must be in [0, " + std::to_string(config_.num_classes) +
        "] (" + std::to_string(config_.num_classes) + " = no label)");
  }
  auto embedding =
      embed1->forward(torch::silu(embed0->forward(sinusoidal_embedding(
          noise_level.to(x.scalar_type()), config_.channels.front()))));
  embedding = torch::silu(embedding + class_embedding->forward(labels));

  auto h = conv_in->forward(x);
  std::vector<torch::Tensor> skips = {h};
  for (auto& stage : down_) {
    if (stage.resample) {
      h = stage.resample->forward(h);
    } else {
      h = stage.block->forward(h, embedding);
      if (stage.attention) h = stage.attention->forward(h);
    }
    skips.push_back(h);
  }
  h = middle0_->forward(h, embedding);
  h = middle_attention_->forward(h);
  h = middle1_->forward(h, embedding);
  for (auto& stage : up_) {
    if (stage.resample) {
      h = h.repeat_interleave(2, 2).repeat_interleave(2, 3);  // nearest ×2
      h = stage.resample->forward(h);
    } else {
      h = stage.block->forward(torch::cat({h, skips.back()}, 1), embedding);
      skips.pop_back();
      if (stage.attention) h = stage.attention->forward(h);
    }
  }
  return conv_out->forward(torch::silu(norm_out->forward(h)));
}

int64_t UNetImpl::num_parameters() const {
  int64_t total = 0;
  for (const auto& p : parameters()) total += p.numel();
  return total;
}

}  // namespace dptrain::models
