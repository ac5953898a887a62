#include "dptrain/dp/layers/linear.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include "dptrain/dp/layers/recording.h"

namespace dptrain::dp {

LinearImpl::LinearImpl(const LinearOptions& options_) : options(options_) {
  reset();
}

void LinearImpl::reset() {
  if (options.in_features() <= 0 || options.out_features() <= 0) {
    throw std::invalid_argument(
        "Linear: in_features and out_features must be > 0, got " +
        std::to_string(options.in_features()) + " and " +
        std::to_string(options.out_features()));
  }
  weight = register_parameter(
      "weight", torch::empty({options.out_features(), options.in_features()}));
  if (options.bias()) {
    bias = register_parameter("bias", torch::empty({options.out_features()}));
  } else {
    bias = register_parameter("bias", {}, /*requires_grad=*/false);
  }
  reset_parameters();
}

void LinearImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight.size(1)));
    bias.uniform_(-bound, bound);
  }
}

void LinearImpl::pretty_print(std::ostream& stream) const {
  stream << "dptrain::dp::Linear(in_features=" << options.in_features()
         << ", out_features=" << options.out_features()
         << ", bias=" << std::boolalpha << options.bias() << ")";
}

torch::Tensor LinearImpl::forward(const torch::Tensor& input) {
  auto output = torch::nn::functional::linear(input, weight, bias);
  detail::maybe_record(*this, input, output);
  return output;
}

void LinearImpl::tie_weight(const torch::Tensor& shared) {
  if (!shared.defined() || shared.sizes() != weight.sizes()) {
    throw std::invalid_argument(
        "Linear::tie_weight: shared weight must have shape [" +
        std::to_string(weight.size(0)) + ", " + std::to_string(weight.size(1)) +
        "], got " +
        (shared.defined() ? c10::str(shared.sizes()) : "undefined"));
  }
  parameters_["weight"] = shared;
  weight = shared;
}

}  // namespace dptrain::dp
