#include "dptrain/dp/layers/elementwise.h"

#include <torch/torch.h>

#include <stdexcept>

#include "dptrain/dp/layers/recording.h"

namespace dptrain::dp {
namespace {
void check_shape(const char* layer, const std::vector<int64_t>& shape) {
  for (int64_t s : shape) {
    if (s <= 0) {
      throw std::invalid_argument(std::string(layer) +
                                  ": shape entries must be > 0, got " +
                                  c10::str(at::IntArrayRef(shape)));
    }
  }
}
void check_input(const char* layer, const torch::Tensor& input,
                 const torch::Tensor& param) {
  TORCH_CHECK(input.dim() > param.dim(), layer,
              ": the parameter must broadcast against the input's trailing "
              "dimensions, not the row dimension; parameter ",
              param.sizes(), ", input ", input.sizes());
}
}  // namespace

ScaleImpl::ScaleImpl(ElementwiseOptions options_)
    : options(std::move(options_)) {
  reset();
}
void ScaleImpl::reset() {
  check_shape("Scale", options.shape());
  scale = register_parameter(
      "scale", torch::full(options.shape(), options.init().value_or(1.0)));
}
void ScaleImpl::pretty_print(std::ostream& stream) const {
  stream << "dptrain::dp::Scale(" << c10::str(at::IntArrayRef(options.shape()))
         << ")";
}
torch::Tensor ScaleImpl::forward(const torch::Tensor& input) {
  check_input("Scale", input, scale);
  auto output = input * scale;
  detail::maybe_record(*this, input, output);
  return output;
}

BiasImpl::BiasImpl(ElementwiseOptions options_) : options(std::move(options_)) {
  reset();
}
void BiasImpl::reset() {
  check_shape("Bias", options.shape());
  bias = register_parameter(
      "bias", torch::full(options.shape(), options.init().value_or(0.0)));
}
void BiasImpl::pretty_print(std::ostream& stream) const {
  stream << "dptrain::dp::Bias(" << c10::str(at::IntArrayRef(options.shape()))
         << ")";
}
torch::Tensor BiasImpl::forward(const torch::Tensor& input) {
  check_input("Bias", input, bias);
  auto output = input + bias;
  detail::maybe_record(*this, torch::Tensor(), output);
  return output;
}

}  // namespace dptrain::dp
