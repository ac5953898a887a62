#include "dptrain/models/feature_cnn.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace dptrain::models {
namespace {

int64_t checked(const char* what, int64_t value) {
  if (value < 1) {
    throw std::invalid_argument(std::string("FeatureCnn: ") + what +
                                " must be >= 1, got " + std::to_string(value));
  }
  return value;
}

}  // namespace

FeatureCnnImpl::FeatureCnnImpl(FeatureCnnOptions options_)
    : ImageClassifier("FeatureCnn",
                      checked("in_channels", options_.in_channels())),
      options(options_) {
  const int64_t c = checked("width", options.width());
  checked("num_classes", options.num_classes());
  conv1 = register_module(
      "conv1",
      dp::Conv2d(dp::Conv2dOptions(options.in_channels(), c, 3).padding(1)));
  conv2 = register_module(
      "conv2", dp::Conv2d(dp::Conv2dOptions(c, 2 * c, 3).padding(1)));
  conv3 = register_module(
      "conv3", dp::Conv2d(dp::Conv2dOptions(2 * c, 4 * c, 3).padding(1)));
  register_classifier(4 * c, options.num_classes(), HeadInit::kTorchDefault);
}

torch::Tensor FeatureCnnImpl::features(const torch::Tensor& images) {
  check_input(images);
  if (images.size(2) < 4 || images.size(3) < 4) {
    throw std::invalid_argument(
        "FeatureCnn: images must be at least 4x4, got " +
        c10::str(images.sizes()));
  }
  auto h = torch::max_pool2d(torch::relu(conv1->forward(images)), 2);
  h = torch::max_pool2d(torch::relu(conv2->forward(h)), 2);
  return torch::relu(conv3->forward(h)).mean({2, 3});
}

torch::Tensor FeatureCnnImpl::forward(const torch::Tensor& images) {
  return classifier()->forward(features(images));
}

}  // namespace dptrain::models
