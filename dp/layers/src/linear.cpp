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
  // A clone (Cloneable copies the fields, then calls reset()) gets its own
  // adapters, into which the source's values are then copied.
  if (lora_rank_ > 0) {
    register_lora();
    weight.requires_grad_(false);
    if (bias.defined()) bias.requires_grad_(false);
  }
}

void LinearImpl::register_lora() {
  lora_a = register_module(
      "lora_a",
      std::make_shared<LinearImpl>(
          LinearOptions(options.in_features(), lora_rank_).bias(false)));
  lora_b = register_module(
      "lora_b",
      std::make_shared<LinearImpl>(
          LinearOptions(lora_rank_, options.out_features()).bias(false)));
  torch::NoGradGuard no_grad;
  lora_b->weight.zero_();
}

void LinearImpl::add_lora(int64_t rank, double alpha) {
  if (rank < 1) {
    throw std::invalid_argument("LoRA rank must be >= 1, got " +
                                std::to_string(rank));
  }
  if (!std::isfinite(alpha) || !(alpha > 0.0)) {
    throw std::invalid_argument("LoRA alpha must be finite and > 0, got " +
                                std::to_string(alpha));
  }
  if (lora_rank_ > 0) {
    throw std::invalid_argument("Linear::add_lora: the layer has adapters");
  }
  lora_rank_ = rank;
  lora_alpha_ = alpha;
  register_lora();
  lora_a->to(weight.device(), weight.scalar_type());
  lora_b->to(weight.device(), weight.scalar_type());
  weight.requires_grad_(false);
  if (bias.defined()) bias.requires_grad_(false);
}

double LinearImpl::lora_scale() const {
  return lora_rank_ > 0 ? lora_alpha_ / static_cast<double>(lora_rank_) : 0.0;
}

torch::Tensor LinearImpl::merged_weight() const {
  torch::NoGradGuard no_grad;
  if (lora_rank_ == 0) return weight.detach().clone();
  return weight.detach() +
         lora_scale() *
             torch::matmul(lora_b->weight.detach(), lora_a->weight.detach());
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
         << ", bias=" << std::boolalpha << options.bias();
  if (lora_rank_ > 0) {
    stream << ", lora_rank=" << lora_rank_ << ", lora_alpha=" << lora_alpha_;
  }
  stream << ")";
}

torch::Tensor LinearImpl::forward(const torch::Tensor& input) {
  auto output = torch::nn::functional::linear(input, weight, bias);
  detail::maybe_record(*this, input, output);  // nothing when frozen
  if (lora_rank_ > 0) {
    output = output + lora_b->forward(lora_a->forward(input)) * lora_scale();
  }
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
