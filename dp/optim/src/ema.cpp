#include "dptrain/dp/optim/ema.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "dptrain/dp/archive/archive_io.h"

namespace dptrain::dp {
namespace {

std::vector<at::Tensor> parameters_of(const torch::nn::Module& model) {
  return model.parameters(/*recurse=*/true);
}

}  // namespace

ParameterAverage::ParameterAverage(const std::vector<at::Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  averages_.reserve(parameters.size());
  for (const at::Tensor& p : parameters) {
    averages_.push_back(p.detach().clone());
  }
}

void ParameterAverage::check_matches(
    const std::vector<at::Tensor>& parameters) const {
  if (parameters.size() != averages_.size()) {
    throw std::invalid_argument(
        name() + ": expected " + std::to_string(averages_.size()) +
        " parameters, got " + std::to_string(parameters.size()));
  }
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    if (parameters[i].sizes() != averages_[i].sizes() ||
        parameters[i].scalar_type() != averages_[i].scalar_type()) {
      throw std::invalid_argument(
          name() + ": parameter " + std::to_string(i) + " has shape " +
          c10::str(parameters[i].sizes()) + " " +
          std::string(c10::toString(parameters[i].scalar_type())) +
          ", the average " + c10::str(averages_[i].sizes()) + " " +
          std::string(c10::toString(averages_[i].scalar_type())));
    }
  }
}

void ParameterAverage::update(const std::vector<at::Tensor>& parameters) {
  check_matches(parameters);
  torch::NoGradGuard no_grad;
  const double w = weight(num_updates_);
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    averages_[i].lerp_(parameters[i].detach().to(averages_[i].device()), w);
  }
  ++num_updates_;
}

void ParameterAverage::update(const torch::nn::Module& model) {
  update(parameters_of(model));
}

void ParameterAverage::copy_to(
    const std::vector<at::Tensor>& parameters) const {
  check_matches(parameters);
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    parameters[i].copy_(averages_[i]);
  }
}

void ParameterAverage::copy_to(torch::nn::Module& model) const {
  copy_to(parameters_of(model));
}

void ParameterAverage::swap(const std::vector<at::Tensor>& parameters) {
  check_matches(parameters);
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    const at::Tensor current = parameters[i].detach().clone();
    parameters[i].copy_(averages_[i]);
    averages_[i].copy_(current);
  }
}

void ParameterAverage::swap(torch::nn::Module& model) {
  swap(parameters_of(model));
}

void ParameterAverage::save(torch::serialize::OutputArchive& archive) const {
  detail::write_string(archive, "kind", name());
  detail::write_double(archive, "decay", decay());
  detail::write_int(archive, "num_updates", num_updates_);
  detail::write_int(archive, "count", static_cast<int64_t>(averages_.size()));
  for (std::size_t i = 0; i < averages_.size(); ++i) {
    archive.write("average_" + std::to_string(i), averages_[i]);
  }
}

void ParameterAverage::load(torch::serialize::InputArchive& archive) {
  const std::string what = name() + " average";
  detail::expect_same(what, "kind", detail::read_string(archive, "kind"),
                      name());
  detail::expect_same(what, "decay",
                      detail::exact_text(detail::read_double(archive, "decay")),
                      detail::exact_text(decay()));
  const int64_t updates = detail::read_int(archive, "num_updates");
  if (updates < 0) {
    throw std::runtime_error(what + " checkpoint has a negative num_updates: " +
                             std::to_string(updates));
  }
  detail::expect_same(what, "count",
                      std::to_string(detail::read_int(archive, "count")),
                      std::to_string(averages_.size()));
  std::vector<at::Tensor> loaded;
  for (std::size_t i = 0; i < averages_.size(); ++i) {
    at::Tensor t = detail::read_tensor(archive, "average_" + std::to_string(i));
    if (t.sizes() != averages_[i].sizes()) {
      throw std::runtime_error(what + " checkpoint mismatch: average " +
                               std::to_string(i) + " has shape " +
                               c10::str(t.sizes()) + " in the checkpoint, " +
                               c10::str(averages_[i].sizes()) + " here");
    }
    loaded.push_back(std::move(t));
  }
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < averages_.size(); ++i) {
    averages_[i].copy_(loaded[i]);
  }
  num_updates_ = updates;
}

Ema::Ema(const std::vector<at::Tensor>& parameters, double decay)
    : ParameterAverage(parameters), decay_(decay) {
  if (!(decay >= 0 && decay < 1)) {
    throw std::invalid_argument("ema_decay must be in [0, 1), got " +
                                detail::short_text(decay));
  }
}

Ema::Ema(const torch::nn::Module& model, double decay)
    : Ema(parameters_of(model), decay) {}

double Ema::decay_at(int64_t t) const {
  return std::min(
      decay_, (1.0 + static_cast<double>(t)) / (10.0 + static_cast<double>(t)));
}

double Ema::weight(int64_t t) const { return 1.0 - decay_at(t); }

PolyakAverage::PolyakAverage(const std::vector<at::Tensor>& parameters)
    : ParameterAverage(parameters) {}

PolyakAverage::PolyakAverage(const torch::nn::Module& model)
    : PolyakAverage(parameters_of(model)) {}

double PolyakAverage::weight(int64_t t) const {
  return 1.0 / (static_cast<double>(t) + 1.0);
}

}  // namespace dptrain::dp
