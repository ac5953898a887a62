#include "dptrain/dp/clipping/oracle.h"

#include <torch/torch.h>

#include <numeric>
#include <stdexcept>
#include <vector>

#include "dptrain/dp/clipping/parameter_groups.h"

namespace dptrain::dp {

ClipResult microbatch_clip_and_accumulate(
    torch::nn::Module& model, int64_t num_examples,
    const std::function<torch::Tensor(int64_t)>& example_losses,
    const ClippingOptions& options) {
  if (num_examples < 0) {
    throw std::invalid_argument("num_examples must be >= 0, got " +
                                std::to_string(num_examples));
  }
  std::vector<torch::Tensor> all;
  std::vector<std::string> names;
  std::vector<int64_t> all_groups;
  const int64_t num_layers =
      detail::parameter_groups(model, all, names, all_groups);
  std::vector<torch::Tensor> params;
  std::vector<int64_t> groups;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all_groups[i] >= 0) {
      params.push_back(all[i]);
      groups.push_back(all_groups[i]);
    }
  }
  const bool flat = options.mode() == ClipMode::kFlat;
  std::vector<torch::Tensor> sums;
  for (const auto& p : params) sums.push_back(torch::zeros_like(p));
  auto norms = flat ? torch::zeros({num_examples}, torch::kDouble)
                    : torch::zeros({num_examples, num_layers}, torch::kDouble);
  auto factors = torch::zeros_like(norms);
  int64_t group_size = 1;
  for (int64_t i = 0; i < num_examples; ++i) {
    auto losses = example_losses(i);
    if (losses.dim() > 0) group_size = losses.numel();
    auto loss = losses.dim() == 0 ? losses : losses.mean();
    std::vector<torch::Tensor> grads;
    if (loss.requires_grad() && !params.empty()) {
      grads = torch::autograd::grad({loss}, params, {}, false, false, true);
    } else {
      grads.resize(params.size());
    }
    torch::NoGradGuard no_grad;
    auto sq = torch::zeros({num_layers}, torch::kDouble);
    for (size_t j = 0; j < params.size(); ++j) {
      if (!grads[j].defined()) continue;
      sq[groups[j]] += grads[j].pow(2).sum().to(torch::kCPU, torch::kDouble);
    }
    auto n = flat ? sq.sum().sqrt().view({1}) : sq.sqrt().view({1, num_layers});
    auto f = detail::clip_factors(n, options, num_layers);
    norms[i] = n[0];
    factors[i] = f[0];
    for (size_t j = 0; j < params.size(); ++j) {
      if (!grads[j].defined()) continue;
      const double c =
          flat ? f[0].item<double>() : f[0][groups[j]].item<double>();
      sums[j].add_(grads[j], c);
    }
  }
  torch::NoGradGuard no_grad;
  for (size_t j = 0; j < params.size(); ++j) {
    auto& grad = params[j].mutable_grad();
    if (grad.defined()) {
      grad.add_(sums[j]);
    } else {
      grad = sums[j];
    }
  }
  return detail::make_clip_result(num_examples, group_size, norms, factors,
                                  options);
}

}  // namespace dptrain::dp
