#include "dptrain/models/small_models.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace dptrain::models {
namespace {

void check_positive(const char* model, const char* what, int64_t value) {
  if (value < 1) {
    throw std::invalid_argument(std::string(model) + ": " + what +
                                " must be >= 1, got " + std::to_string(value));
  }
}

void check_image(const char* model, const torch::Tensor& images,
                 int64_t image_size) {
  if (images.size(2) != image_size || images.size(3) != image_size) {
    throw std::invalid_argument(
        std::string(model) + ": images must be " + std::to_string(image_size) +
        "x" + std::to_string(image_size) + " (image_size), got " +
        c10::str(images.sizes()));
  }
}

}  // namespace

TanhCnnImpl::TanhCnnImpl(TanhCnnOptions options_)
    : ImageClassifier("TanhCnn", options_.in_channels()),
      options(std::move(options_)) {
  check_positive("TanhCnn", "conv1_channels", options.conv1_channels());
  check_positive("TanhCnn", "conv2_channels", options.conv2_channels());
  check_positive("TanhCnn", "hidden", options.hidden());
  const int64_t side = feature_side(options.image_size());
  conv1 = register_module(
      "conv1", dp::Conv2d(dp::Conv2dOptions(options.in_channels(),
                                            options.conv1_channels(), 8)
                              .stride(2)
                              .padding(2)));
  conv2 = register_module(
      "conv2", dp::Conv2d(dp::Conv2dOptions(options.conv1_channels(),
                                            options.conv2_channels(), 4)
                              .stride(2)));
  fc1 = register_module(
      "fc1",
      dp::Linear(options.conv2_channels() * side * side, options.hidden()));
  register_classifier(options.hidden(), options.num_classes(),
                      HeadInit::kTorchDefault);
}

int64_t TanhCnnImpl::feature_side(int64_t image_size) {
  // conv1: (s + 4 − 8)/2 + 1; pool −1; conv2: (p − 4)/2 + 1; pool −1.
  // The smallest size with a non-empty map is 16 (→ 7, 6, 2, 1).
  if (image_size < 16) {
    throw std::invalid_argument("TanhCnn: image_size must be >= 16, got " +
                                std::to_string(image_size));
  }
  const int64_t after_conv1 = (image_size + 4 - 8) / 2 + 1 - 1;
  return (after_conv1 - 4) / 2 + 1 - 1;
}

torch::Tensor TanhCnnImpl::forward(const torch::Tensor& images) {
  check_input(images);
  check_image("TanhCnn", images, options.image_size());
  namespace F = torch::nn::functional;
  const auto pool = F::MaxPool2dFuncOptions(2).stride(1);
  auto h = F::max_pool2d(activate(conv1(images), options.activation()), pool);
  h = F::max_pool2d(activate(conv2(h), options.activation()), pool);
  h = activate(fc1(h.flatten(1)), options.activation());
  return classifier()(h);
}

MlpImpl::MlpImpl(MlpOptions options_)
    : ImageClassifier("Mlp", options_.in_channels()),
      options(std::move(options_)) {
  check_positive("Mlp", "image_size", options.image_size());
  auto list = register_module("hidden", torch::nn::ModuleList());
  int64_t width =
      options.in_channels() * options.image_size() * options.image_size();
  for (int64_t h : options.hidden()) {
    check_positive("Mlp", "hidden width", h);
    hidden.emplace_back(width, h);
    list->push_back(hidden.back());
    width = h;
  }
  register_classifier(width, options.num_classes(), HeadInit::kTorchDefault);
}

torch::Tensor MlpImpl::forward(const torch::Tensor& images) {
  check_input(images);
  check_image("Mlp", images, options.image_size());
  auto h = images.flatten(1);
  for (auto& layer : hidden) h = activate(layer(h), options.activation());
  return classifier()(h);
}

}  // namespace dptrain::models
