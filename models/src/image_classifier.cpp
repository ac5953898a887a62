#include "dptrain/models/image_classifier.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <unordered_set>

namespace dptrain::models {

ImageClassifier::ImageClassifier(std::string name, int64_t in_channels)
    : torch::nn::Module(std::move(name)), in_channels_(in_channels) {
  if (in_channels < 1) {
    throw std::invalid_argument(this->name() +
                                ": in_channels must be >= 1, got " +
                                std::to_string(in_channels));
  }
}

int64_t ImageClassifier::num_classes() const {
  return classifier_->options.out_features();
}

void ImageClassifier::register_classifier(int64_t in_features,
                                          int64_t num_classes, HeadInit init) {
  if (num_classes < 1) {
    throw std::invalid_argument(name() + ": num_classes must be >= 1, got " +
                                std::to_string(num_classes));
  }
  head_init_ = init;
  classifier_ =
      register_module("classifier", dp::Linear(in_features, num_classes));
  init_head(*classifier_, init);
}

void ImageClassifier::reset_classifier(int64_t num_classes) {
  if (num_classes < 1) {
    throw std::invalid_argument(name() + ": num_classes must be >= 1, got " +
                                std::to_string(num_classes));
  }
  const auto device = classifier_->weight.device();
  const auto dtype = classifier_->weight.scalar_type();
  dp::Linear head(classifier_->options.in_features(), num_classes);
  init_head(*head, head_init_);
  head->to(device, dtype);
  classifier_ = replace_module("classifier", head);
}

void ImageClassifier::check_input(const torch::Tensor& images) const {
  if (!images.defined() || images.dim() != 4 ||
      images.size(1) != in_channels_) {
    std::string got = images.defined() ? c10::str(images.sizes()) : "undefined";
    throw std::invalid_argument(name() + ": images must be [N, " +
                                std::to_string(in_channels_) + ", H, W], got " +
                                got);
  }
}

torch::Tensor ImageClassifier::classify_pooled(const torch::Tensor& features,
                                               double dropout) {
  auto h = features.mean({2, 3});
  if (dropout > 0.0) h = torch::dropout(h, dropout, is_training());
  return classifier_(h);
}

void init_head(dp::LinearImpl& head, HeadInit init) {
  torch::NoGradGuard no_grad;
  const double fan_in = static_cast<double>(head.options.in_features());
  switch (init) {
    case HeadInit::kTorchDefault:
      head.reset_parameters();
      return;
    case HeadInit::kFanIn: {
      // Truncated normal on ±2σ by inverse CDF: u ~ U(Φ(−2), Φ(2)).
      const double lo = 0.5 * std::erfc(2.0 / std::sqrt(2.0));
      const double sigma = 1.0 / std::sqrt(fan_in) / 0.87962566103423978;
      auto u = torch::empty_like(head.weight).uniform_(lo, 1.0 - lo);
      head.weight.copy_(torch::erfinv(u * 2 - 1) * (std::sqrt(2.0) * sigma));
      break;
    }
    case HeadInit::kNormal001:
      head.weight.normal_(0.0, 0.01);
      break;
    case HeadInit::kZeros:
      head.weight.zero_();
      break;
  }
  if (head.bias.defined()) head.bias.zero_();
}

int64_t count_parameters(const torch::nn::Module& module, bool trainable_only) {
  std::unordered_set<const void*> seen;
  int64_t total = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) {
    if (!p.defined()) continue;
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    if (trainable_only && !p.requires_grad()) continue;
    total += p.numel();
  }
  return total;
}

}  // namespace dptrain::models
