#include "dptrain/dp/layers/normalization.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

#include "dptrain/dp/layers/autocast.h"
#include "dptrain/dp/layers/recording.h"

namespace dptrain::dp {

GroupNormImpl::GroupNormImpl(const GroupNormOptions& options_)
    : options(options_) {
  reset();
}

void GroupNormImpl::reset() {
  if (options.num_groups() <= 0 || options.num_channels() <= 0 ||
      options.num_channels() % options.num_groups() != 0) {
    throw std::invalid_argument(
        "GroupNorm: num_groups must be > 0 and divide num_channels (" +
        std::to_string(options.num_channels()) + "), got " +
        std::to_string(options.num_groups()));
  }
  if (options.affine()) {
    weight =
        register_parameter("weight", torch::ones({options.num_channels()}));
    bias = register_parameter("bias", torch::zeros({options.num_channels()}));
  } else {
    weight = register_parameter("weight", {}, false);
    bias = register_parameter("bias", {}, false);
  }
}

void GroupNormImpl::pretty_print(std::ostream& stream) const {
  stream << "dptrain::dp::GroupNorm(" << options.num_groups() << ", "
         << options.num_channels() << ", eps=" << options.eps()
         << ", affine=" << std::boolalpha << options.affine() << ")";
}

torch::Tensor GroupNormImpl::forward(const torch::Tensor& input) {
  // In the parameters' dtype (a bf16 input under autocast is promoted).
  const auto x = promote_to_dtype_of(input, weight);
  if (!options.affine()) {
    return torch::group_norm(x, options.num_groups(), {}, {}, options.eps());
  }
  if (!detail::is_recording()) {
    return torch::group_norm(x, options.num_groups(), weight, bias,
                             options.eps());
  }
  // Recording: keep the normalised input x̂; the affine map is separate.
  auto normalized =
      torch::group_norm(x, options.num_groups(), {}, {}, options.eps());
  std::vector<int64_t> shape(x.dim(), 1);
  shape[1] = options.num_channels();
  auto output =
      torch::addcmul(bias.view(shape), normalized, weight.view(shape));
  detail::maybe_record(*this, normalized, output);
  return output;
}

LayerNormImpl::LayerNormImpl(LayerNormOptions options_)
    : options(std::move(options_)) {
  reset();
}

void LayerNormImpl::reset() {
  for (int64_t s : options.normalized_shape()) {
    if (s <= 0) {
      throw std::invalid_argument(
          "LayerNorm: normalized_shape entries must be > 0, got " +
          c10::str(at::IntArrayRef(options.normalized_shape())));
    }
  }
  if (options.elementwise_affine()) {
    weight =
        register_parameter("weight", torch::ones(options.normalized_shape()));
    bias = register_parameter("bias", torch::zeros(options.normalized_shape()));
  } else {
    weight = register_parameter("weight", {}, false);
    bias = register_parameter("bias", {}, false);
  }
}

void LayerNormImpl::pretty_print(std::ostream& stream) const {
  stream << "dptrain::dp::LayerNorm("
         << c10::str(at::IntArrayRef(options.normalized_shape()))
         << ", eps=" << options.eps()
         << ", elementwise_affine=" << std::boolalpha
         << options.elementwise_affine() << ")";
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& input) {
  // In the parameters' dtype (a bf16 input under autocast is promoted).
  const auto x = promote_to_dtype_of(input, weight);
  const auto& shape = options.normalized_shape();
  if (!options.elementwise_affine()) {
    return torch::layer_norm(x, shape, {}, {}, options.eps());
  }
  if (!detail::is_recording()) {
    return torch::layer_norm(x, shape, weight, bias, options.eps());
  }
  auto normalized = torch::layer_norm(x, shape, {}, {}, options.eps());
  auto output = torch::addcmul(bias, normalized, weight);
  detail::maybe_record(*this, normalized, output);
  return output;
}

RMSNormImpl::RMSNormImpl(RMSNormOptions options_) : options(options_) {
  reset();
}

void RMSNormImpl::reset() {
  if (options.dim() <= 0) {
    throw std::invalid_argument("RMSNorm: dim must be > 0, got " +
                                std::to_string(options.dim()));
  }
  if (!(options.eps() > 0.0)) {
    throw std::invalid_argument("RMSNorm: eps must be > 0, got " +
                                std::to_string(options.eps()));
  }
  scale = register_parameter("scale", torch::zeros({options.dim()}));
}

void RMSNormImpl::pretty_print(std::ostream& stream) const {
  stream << "dptrain::dp::RMSNorm(" << options.dim()
         << ", eps=" << options.eps() << ")";
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() >= 2 && input.size(-1) == options.dim(),
              "RMSNorm: input must be [N, ..., ", options.dim(), "], got ",
              input.sizes());
  // In the parameters' dtype (a bf16 input under autocast is promoted).
  const auto x = promote_to_dtype_of(input, scale);
  auto normalized =
      x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + options.eps());
  auto output = normalized * (scale + 1.0);
  detail::maybe_record(*this, normalized, output);
  return output;
}

}  // namespace dptrain::dp
