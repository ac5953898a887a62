#include "dptrain/dp/layers/softplus_scale.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

#include "dptrain/dp/layers/recording.h"

namespace dptrain::dp {

SoftplusScaleImpl::SoftplusScaleImpl(ElementwiseOptions options_)
    : options(std::move(options_)) {
  reset();
}

void SoftplusScaleImpl::reset() {
  for (int64_t s : options.shape()) {
    if (s <= 0) {
      throw std::invalid_argument(
          "SoftplusScale: shape entries must be > 0, got " +
          c10::str(at::IntArrayRef(options.shape())));
    }
  }
  param = register_parameter(
      "param", torch::full(options.shape(), options.init().value_or(0.0)));
}

void SoftplusScaleImpl::pretty_print(std::ostream& stream) const {
  stream << "dptrain::dp::SoftplusScale("
         << c10::str(at::IntArrayRef(options.shape())) << ")";
}

torch::Tensor SoftplusScaleImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() > param.dim(),
              "SoftplusScale: the parameter must broadcast against the "
              "input's trailing dimensions, not the row dimension; parameter ",
              param.sizes(), ", input ", input.sizes());
  auto output = input * torch::softplus(param);
  detail::maybe_record(*this, input, output);
  return output;
}

}  // namespace dptrain::dp
