#include "dptrain/models/activations.h"

#include <torch/torch.h>

#include <stdexcept>
#include <utility>

namespace dptrain::models {
namespace {

const std::vector<std::pair<Activation, const char*>>& names() {
  static const std::vector<std::pair<Activation, const char*>> table = {
      {Activation::kIdentity, "identity"},
      {Activation::kRelu, "relu"},
      {Activation::kGelu, "gelu"},
      {Activation::kSilu, "silu"},
      {Activation::kTanh, "tanh"},
      {Activation::kScaledRelu, "scaled_relu"},
      {Activation::kScaledGelu, "scaled_gelu"},
      {Activation::kScaledSilu, "scaled_silu"},
      {Activation::kScaledTanh, "scaled_tanh"},
  };
  return table;
}

}  // namespace

torch::Tensor activate(const torch::Tensor& x, Activation activation) {
  switch (activation) {
    case Activation::kIdentity:
      return x;
    case Activation::kRelu:
      return torch::relu(x);
    case Activation::kGelu:
      return torch::gelu(x, "tanh");
    case Activation::kSilu:
      return torch::silu(x);
    case Activation::kTanh:
      return torch::tanh(x);
    case Activation::kScaledRelu:
      return torch::relu(x) * kScaledReluGamma;
    case Activation::kScaledGelu:
      return torch::gelu(x, "tanh") * kScaledGeluGamma;
    case Activation::kScaledSilu:
      return torch::silu(x) * kScaledSiluGamma;
    case Activation::kScaledTanh:
      return torch::tanh(x) * kScaledTanhGamma;
  }
  throw std::invalid_argument("activate: unknown activation " +
                              std::to_string(static_cast<int>(activation)));
}

at::Tensor gelu_exact(const at::Tensor& x) {
  auto y = torch::gelu(x);
  // A hook on y runs before GeluBackward takes the gradient.
  if (y.requires_grad()) {
    y.register_hook([](const at::Tensor& grad) { return grad.contiguous(); });
  }
  return y;
}

std::string to_string(Activation activation) {
  for (const auto& [a, n] : names()) {
    if (a == activation) return n;
  }
  throw std::invalid_argument("unknown activation " +
                              std::to_string(static_cast<int>(activation)));
}

Activation parse_activation(const std::string& name) {
  for (const auto& [a, n] : names()) {
    if (name == n) return a;
  }
  std::string known;
  for (const auto& entry : names()) {
    known += (known.empty() ? "" : ", ") + std::string(entry.second);
  }
  throw std::invalid_argument("activation must be one of " + known + ", got '" +
                              name + "'");
}

std::vector<std::string> activation_names() {
  std::vector<std::string> out;
  for (const auto& entry : names()) out.emplace_back(entry.second);
  return out;
}

}  // namespace dptrain::models
