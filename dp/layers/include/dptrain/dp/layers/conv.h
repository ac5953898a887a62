#pragma once
/// DP-aware convolutions: Conv1d, Conv2d and WSConv2d (scaled weight
/// standardisation) with per-example gradient recording.

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/enum.h>
#include <torch/expanding_array.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <cstddef>
#include <cstdint>
#include <ostream>

namespace dptrain::dp {

/// How a convolution pads its input.
enum class PaddingKind {
  kExplicit,  ///< `padding_size()` zeros on both sides of each dimension
  kValid,     ///< no padding
  kSame,      ///< TensorFlow "SAME": output length ceil(L / stride); the odd
              ///< pixel of an uneven total goes right/bottom (asymmetric)
  kCausal,    ///< all dilation·(kernel−1) zeros on the left/top (stride 1)
};

/// Tag for causal padding: `Conv1dOptions(c, c, 4).groups(c).padding(kCausal)`.
struct CausalPadding {};
inline constexpr CausalPadding kCausal{};

/// Options of Conv1d/Conv2d, named as torch::nn::ConvOptions. Differences:
/// padding(torch::kSame) also works with stride > 1 (TensorFlow "SAME"), the
/// extra padding(kCausal), and only zero padding (no padding_mode).
template <size_t D>
struct ConvOptions {
  ConvOptions(int64_t in_channels, int64_t out_channels,
              torch::ExpandingArray<D> kernel_size)
      : in_channels_(in_channels),
        out_channels_(out_channels),
        kernel_size_(kernel_size) {}

  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<D>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<D>, stride) = 1;
  TORCH_ARG(torch::ExpandingArray<D>, dilation) = 1;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(bool, bias) = true;

 public:  // TORCH_ARG leaves the access private
  /// Explicit symmetric zero padding.
  ConvOptions& padding(torch::ExpandingArray<D> size) {
    padding_size_ = size;
    padding_kind_ = PaddingKind::kExplicit;
    return *this;
  }
  ConvOptions& padding(torch::enumtype::kSame) {
    padding_kind_ = PaddingKind::kSame;
    return *this;
  }
  ConvOptions& padding(torch::enumtype::kValid) {
    padding_kind_ = PaddingKind::kValid;
    return *this;
  }
  ConvOptions& padding(CausalPadding) {
    padding_kind_ = PaddingKind::kCausal;
    return *this;
  }
  PaddingKind padding_kind() const { return padding_kind_; }
  const torch::ExpandingArray<D>& padding_size() const { return padding_size_; }

 private:
  torch::ExpandingArray<D> padding_size_ = torch::ExpandingArray<D>(0);
  PaddingKind padding_kind_ = PaddingKind::kExplicit;
};
using Conv1dOptions = ConvOptions<1>;
using Conv2dOptions = ConvOptions<2>;

/// Options of WSConv2d: those of Conv2d plus the standardisation's eps.
struct WSConv2dOptions : ConvOptions<2> {
  WSConv2dOptions(int64_t in_channels, int64_t out_channels,
                  torch::ExpandingArray<2> kernel_size)
      : ConvOptions<2>(in_channels, out_channels, kernel_size) {}
  /// From Conv2d options (the chained setters of the base return those), so
  /// WSConv2d(WSConv2dOptions(2, 4, 3).stride(2)) works. A base setter
  /// returns ConvOptions<2>&, which drops eps: call .eps() last.
  /* implicit */ WSConv2dOptions(const ConvOptions<2>& conv)  // NOLINT
      : ConvOptions<2>(conv) {}
  /// Floor on fan_in · var(W) inside the rsqrt (NFNet: 1e-4).
  TORCH_ARG(double, eps) = 1e-4;
};

namespace detail {
/// Shared body of the convolutions. `Options` is ConvOptions<D> or a subclass.
template <size_t D, typename Derived, typename Options>
class ConvNdImpl : public torch::nn::Cloneable<Derived> {
 public:
  explicit ConvNdImpl(Options options_) : options(std::move(options_)) {}
  Options options;
  torch::Tensor weight;  ///< [out, in / groups, kernel...]
  torch::Tensor bias;    ///< [out], undefined without bias

 protected:
  /// Validates options, registers weight and bias, initialises as torch.
  void reset_conv();
  /// Pads, convolves with `w`, records (padded input, output, padding).
  torch::Tensor conv_forward(const torch::Tensor& input,
                             const torch::Tensor& w);
};
}  // namespace detail

/// 1-d convolution: [N, in, L] → [N, out, L'].
class Conv1dImpl : public detail::ConvNdImpl<1, Conv1dImpl, Conv1dOptions> {
 public:
  Conv1dImpl(int64_t in_channels, int64_t out_channels,
             torch::ExpandingArray<1> kernel_size)
      : Conv1dImpl(Conv1dOptions(in_channels, out_channels, kernel_size)) {}
  explicit Conv1dImpl(Conv1dOptions options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
};
TORCH_MODULE(Conv1d);

/// 2-d convolution: [N, in, H, W] → [N, out, H', W'].
class Conv2dImpl : public detail::ConvNdImpl<2, Conv2dImpl, Conv2dOptions> {
 public:
  Conv2dImpl(int64_t in_channels, int64_t out_channels,
             torch::ExpandingArray<2> kernel_size)
      : Conv2dImpl(Conv2dOptions(in_channels, out_channels, kernel_size)) {}
  explicit Conv2dImpl(Conv2dOptions options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
};
TORCH_MODULE(Conv2d);

/// 2-d convolution with scaled weight standardisation (Brock et al. 2021,
/// NFNet; De et al. 2022, WRN): per output channel o,
///   Ŵ_o = gain_o · (W_o − mean(W_o)) · rsqrt(max(fan_in · var(W_o), eps)),
/// fan_in = in/groups · kernel area, var biased; then conv(x, Ŵ) + bias.
class WSConv2dImpl
    : public detail::ConvNdImpl<2, WSConv2dImpl, WSConv2dOptions> {
 public:
  WSConv2dImpl(int64_t in_channels, int64_t out_channels,
               torch::ExpandingArray<2> kernel_size)
      : WSConv2dImpl(WSConv2dOptions(in_channels, out_channels, kernel_size)) {}
  explicit WSConv2dImpl(WSConv2dOptions options_);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);
  /// The standardised weight Ŵ used by forward.
  torch::Tensor standardized_weight() const;

  torch::Tensor gain;  ///< [out, 1, 1, 1], initialised to ones
};
TORCH_MODULE(WSConv2d);

}  // namespace dptrain::dp
