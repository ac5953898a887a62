#include "dptrain/dp/layers/conv.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "dptrain/dp/layers/recording.h"
#include "dptrain/dp/layers/ws_channel_stats.h"

namespace dptrain::dp {
namespace {

template <size_t D>
std::string array_str(const torch::ExpandingArray<D>& a) {
  return c10::str(at::IntArrayRef(*a));
}

template <size_t D>
void check_positive(const char* layer, const char* name,
                    const torch::ExpandingArray<D>& a) {
  for (int64_t v : *a) {
    if (v <= 0) {
      throw std::invalid_argument(std::string(layer) + ": " + name +
                                  " must be > 0, got " + array_str<D>(a));
    }
  }
}

}  // namespace

namespace detail {

template <size_t D, typename Derived, typename Options>
void ConvNdImpl<D, Derived, Options>::reset_conv() {
  const char* name = D == 1 ? "Conv1d" : "Conv2d";
  const auto& o = options;
  if (o.in_channels() <= 0 || o.out_channels() <= 0) {
    throw std::invalid_argument(std::string(name) +
                                ": in_channels and out_channels must be > 0, "
                                "got " +
                                std::to_string(o.in_channels()) + " and " +
                                std::to_string(o.out_channels()));
  }
  if (o.groups() <= 0 || o.in_channels() % o.groups() != 0 ||
      o.out_channels() % o.groups() != 0) {
    throw std::invalid_argument(
        std::string(name) + ": groups must be > 0 and divide in_channels (" +
        std::to_string(o.in_channels()) + ") and out_channels (" +
        std::to_string(o.out_channels()) + "), got " +
        std::to_string(o.groups()));
  }
  check_positive<D>(name, "kernel_size", o.kernel_size());
  check_positive<D>(name, "stride", o.stride());
  check_positive<D>(name, "dilation", o.dilation());
  for (int64_t p : *o.padding_size()) {
    if (p < 0) {
      throw std::invalid_argument(std::string(name) +
                                  ": padding must be >= 0, got " +
                                  array_str<D>(o.padding_size()));
    }
  }
  std::vector<int64_t> shape = {o.out_channels(), o.in_channels() / o.groups()};
  for (int64_t k : *o.kernel_size()) shape.push_back(k);
  weight = this->register_parameter("weight", torch::empty(shape));
  if (o.bias()) {
    bias = this->register_parameter("bias", torch::empty({o.out_channels()}));
  } else {
    bias = this->register_parameter("bias", {}, /*requires_grad=*/false);
  }
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound =
        1.0 / std::sqrt(static_cast<double>(weight[0].numel()));
    bias.uniform_(-bound, bound);
  }
}

template <size_t D, typename Derived, typename Options>
torch::Tensor ConvNdImpl<D, Derived, Options>::conv_forward(
    const torch::Tensor& input, const torch::Tensor& w) {
  const auto& o = options;
  TORCH_CHECK(input.dim() == static_cast<int64_t>(D) + 2, "Conv", D,
              "d: input must have ", D + 2, " dimensions [N, C, ...], got ",
              input.sizes());
  TORCH_CHECK(input.size(1) == o.in_channels(), "Conv", D, "d: input has ",
              input.size(1), " channels, expected ", o.in_channels());
  std::vector<int64_t> left(D), right(D);
  bool symmetric = true;
  for (size_t i = 0; i < D; ++i) {
    const int64_t k = (*o.kernel_size())[i];
    const int64_t s = (*o.stride())[i];
    const int64_t d = (*o.dilation())[i];
    const int64_t length = input.size(2 + i);
    switch (o.padding_kind()) {
      case PaddingKind::kExplicit:
        left[i] = right[i] = (*o.padding_size())[i];
        break;
      case PaddingKind::kValid:
        left[i] = right[i] = 0;
        break;
      case PaddingKind::kSame: {
        const int64_t out = (length + s - 1) / s;
        const int64_t total =
            std::max<int64_t>((out - 1) * s + d * (k - 1) + 1 - length, 0);
        left[i] = total / 2;
        right[i] = total - left[i];
        break;
      }
      case PaddingKind::kCausal:
        left[i] = d * (k - 1);
        right[i] = 0;
        break;
    }
    symmetric = symmetric && left[i] == right[i];
  }
  torch::Tensor x = input;
  std::vector<int64_t> conv_padding = left;
  if (!symmetric) {
    std::vector<int64_t> pads;  // last dimension first
    for (size_t i = D; i-- > 0;) {
      pads.push_back(left[i]);
      pads.push_back(right[i]);
    }
    x = torch::constant_pad_nd(input, pads, 0);
    conv_padding.assign(D, 0);
  }
  // conv1d/2d/3d rather than torch::convolution: autocast lists those (it
  // does not cast a call of convolution itself).
  torch::Tensor output;
  if constexpr (D == 1) {
    output = torch::conv1d(x, w, bias, *o.stride(), conv_padding, *o.dilation(),
                           o.groups());
  } else if constexpr (D == 2) {
    output = torch::conv2d(x, w, bias, *o.stride(), conv_padding, *o.dilation(),
                           o.groups());
  } else {
    output = torch::conv3d(x, w, bias, *o.stride(), conv_padding, *o.dilation(),
                           o.groups());
  }
  maybe_record(*this, x, output, conv_padding);
  return output;
}

WSChannelStats ws_channel_stats(const torch::Tensor& weight, double eps) {
  const double fan_in = static_cast<double>(weight[0].numel());
  WSChannelStats st;
  st.mean = weight.mean({1, 2, 3}, /*keepdim=*/true);
  st.centered = weight - st.mean;
  st.n_var = st.centered.pow(2).mean({1, 2, 3}, /*keepdim=*/true) * fan_in;
  st.s = torch::sqrt(torch::clamp_min(st.n_var, eps));
  st.active = (st.n_var >= eps).to(weight.dtype());
  return st;
}

template class ConvNdImpl<1, Conv1dImpl, Conv1dOptions>;
template class ConvNdImpl<2, Conv2dImpl, Conv2dOptions>;
template class ConvNdImpl<2, WSConv2dImpl, WSConv2dOptions>;

}  // namespace detail

namespace {
template <size_t D, typename Options>
void print_conv(std::ostream& stream, const char* name, const Options& o) {
  stream << "dptrain::dp::" << name << "(" << o.in_channels() << ", "
         << o.out_channels()
         << ", kernel_size=" << array_str<D>(o.kernel_size())
         << ", stride=" << array_str<D>(o.stride());
  switch (o.padding_kind()) {
    case PaddingKind::kExplicit:
      stream << ", padding=" << array_str<D>(o.padding_size());
      break;
    case PaddingKind::kValid:
      stream << ", padding=valid";
      break;
    case PaddingKind::kSame:
      stream << ", padding=same";
      break;
    case PaddingKind::kCausal:
      stream << ", padding=causal";
      break;
  }
  stream << ", dilation=" << array_str<D>(o.dilation())
         << ", groups=" << o.groups() << ", bias=" << std::boolalpha << o.bias()
         << ")";
}
}  // namespace

Conv1dImpl::Conv1dImpl(Conv1dOptions options_)
    : ConvNdImpl(std::move(options_)) {
  reset();
}
void Conv1dImpl::reset() { reset_conv(); }
void Conv1dImpl::pretty_print(std::ostream& stream) const {
  print_conv<1>(stream, "Conv1d", options);
}
torch::Tensor Conv1dImpl::forward(const torch::Tensor& input) {
  return conv_forward(input, weight);
}

Conv2dImpl::Conv2dImpl(Conv2dOptions options_)
    : ConvNdImpl(std::move(options_)) {
  reset();
}
void Conv2dImpl::reset() { reset_conv(); }
void Conv2dImpl::pretty_print(std::ostream& stream) const {
  print_conv<2>(stream, "Conv2d", options);
}
torch::Tensor Conv2dImpl::forward(const torch::Tensor& input) {
  return conv_forward(input, weight);
}

WSConv2dImpl::WSConv2dImpl(WSConv2dOptions options_)
    : ConvNdImpl(std::move(options_)) {
  reset();
}
void WSConv2dImpl::reset() {
  if (!(options.eps() > 0.0)) {
    throw std::invalid_argument("WSConv2d: eps must be > 0, got " +
                                std::to_string(options.eps()));
  }
  reset_conv();
  gain = register_parameter("gain",
                            torch::ones({options.out_channels(), 1, 1, 1}));
}
void WSConv2dImpl::pretty_print(std::ostream& stream) const {
  print_conv<2>(stream, "WSConv2d", options);
}
torch::Tensor WSConv2dImpl::standardized_weight() const {
  const auto st = detail::ws_channel_stats(weight, options.eps());
  auto scale = torch::rsqrt(torch::clamp_min(st.n_var, options.eps())) * gain;
  return st.centered * scale;
}
torch::Tensor WSConv2dImpl::forward(const torch::Tensor& input) {
  return conv_forward(input, standardized_weight());
}

}  // namespace dptrain::dp
