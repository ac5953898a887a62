#include "dptrain/dp/optim/optimizer.h"

#include <torch/torch.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "dptrain/dp/archive/archive_io.h"

namespace dptrain::dp {
namespace {

void require(bool ok, const std::string& field, const std::string& rule,
             double value) {
  if (!ok) {
    throw std::invalid_argument(field + " must be " + rule + ", got " +
                                detail::short_text(value));
  }
}

std::unique_ptr<torch::optim::Optimizer> make_torch_optimizer(
    const std::vector<at::Tensor>& parameters,
    const OptimizerOptions& options) {
  switch (options.kind) {
    case OptimizerKind::kSgd:
      return std::make_unique<torch::optim::SGD>(
          parameters, torch::optim::SGDOptions(options.lr)
                          .momentum(options.momentum)
                          .nesterov(options.nesterov)
                          .weight_decay(options.weight_decay));
    case OptimizerKind::kAdam:
      return std::make_unique<torch::optim::Adam>(
          parameters, torch::optim::AdamOptions(options.lr)
                          .betas({options.beta1, options.beta2})
                          .eps(options.eps)
                          .weight_decay(options.weight_decay));
    case OptimizerKind::kAdamW:
      return std::make_unique<torch::optim::AdamW>(
          parameters, torch::optim::AdamWOptions(options.lr)
                          .betas({options.beta1, options.beta2})
                          .eps(options.eps)
                          .weight_decay(options.weight_decay));
  }
  throw std::invalid_argument("unknown optimizer kind");
}

}  // namespace

OptimizerKind parse_optimizer_kind(const std::string& name) {
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "adam") return OptimizerKind::kAdam;
  if (name == "adamw") return OptimizerKind::kAdamW;
  throw std::invalid_argument(
      "optimizer must be one of sgd, adam, adamw, got '" + name + "'");
}

std::string to_string(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd:
      return "sgd";
    case OptimizerKind::kAdam:
      return "adam";
    case OptimizerKind::kAdamW:
      return "adamw";
  }
  return "unknown";
}

void validate(const OptimizerOptions& o) {
  require(std::isfinite(o.lr) && o.lr > 0, "lr", "> 0", o.lr);
  require(o.momentum >= 0 && o.momentum < 1, "momentum", "in [0, 1)",
          o.momentum);
  if (o.nesterov && o.momentum == 0) {
    throw std::invalid_argument("nesterov needs momentum > 0, got momentum 0");
  }
  if (o.kind != OptimizerKind::kSgd && (o.momentum != 0 || o.nesterov)) {
    throw std::invalid_argument(
        "momentum and nesterov apply to sgd only, not " + to_string(o.kind));
  }
  require(std::isfinite(o.weight_decay) && o.weight_decay >= 0, "weight_decay",
          ">= 0", o.weight_decay);
  require(o.beta1 >= 0 && o.beta1 < 1, "beta1", "in [0, 1)", o.beta1);
  require(o.beta2 >= 0 && o.beta2 < 1, "beta2", "in [0, 1)", o.beta2);
  require(std::isfinite(o.eps) && o.eps > 0, "eps", "> 0", o.eps);
}

DpOptimizer::DpOptimizer(const std::vector<at::Tensor>& parameters,
                         const OptimizerOptions& options)
    : parameters_(parameters), options_(options) {
  validate(options_);
  optimizer_ = make_torch_optimizer(parameters_, options_);
}

DpOptimizer::~DpOptimizer() = default;
DpOptimizer::DpOptimizer(DpOptimizer&&) noexcept = default;
DpOptimizer& DpOptimizer::operator=(DpOptimizer&&) noexcept = default;

void DpOptimizer::step() { optimizer_->step(); }

void DpOptimizer::zero_grad() {
  for (const at::Tensor& p : parameters_) p.mutable_grad().reset();
}

double DpOptimizer::learning_rate() const {
  return optimizer_->param_groups().at(0).options().get_lr();
}

void DpOptimizer::set_learning_rate(double lr) {
  require(std::isfinite(lr) && lr > 0, "lr", "> 0", lr);
  for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);
}

void DpOptimizer::save(torch::serialize::OutputArchive& archive) const {
  detail::write_string(archive, "kind", to_string(options_.kind));
  torch::serialize::OutputArchive state;
  optimizer_->save(state);
  archive.write("state", state);
}

void DpOptimizer::load(torch::serialize::InputArchive& archive) {
  detail::expect_same("optimizer", "kind", detail::read_string(archive, "kind"),
                      to_string(options_.kind));
  torch::serialize::InputArchive state;
  if (!archive.try_read("state", state)) {
    throw std::runtime_error("checkpoint has no entry 'state'");
  }
  // Rehearse on copies first: LibTorch may fail half-way through a load.
  // Loaded state tensors alias the archive's, so the rehearsal steps on a
  // deep copy (saved and reloaded) and the archive stays as it was.
  std::vector<at::Tensor> copies;
  copies.reserve(parameters_.size());
  for (const at::Tensor& p : parameters_) {
    copies.push_back(p.detach().clone().requires_grad_(p.requires_grad()));
  }
  try {
    auto first = make_torch_optimizer(copies, options_);
    first->load(state);
    std::stringstream bytes;
    {
      torch::serialize::OutputArchive copy;
      first->save(copy);
      copy.save_to(bytes);
    }
    torch::serialize::InputArchive copy;
    copy.load_from(bytes);
    auto rehearsal = make_torch_optimizer(copies, options_);
    rehearsal->load(copy);
    // A step on zero gradients uses every loaded buffer with its parameter,
    // so a state of the wrong shape fails here rather than mid-training.
    for (at::Tensor& c : copies) c.mutable_grad() = at::zeros_like(c);
    rehearsal->step();
  } catch (const std::exception& e) {
    const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
    throw std::runtime_error(
        "optimizer checkpoint does not fit these parameters: " +
        (c10_error != nullptr ? c10_error->what_without_backtrace()
                              : std::string(e.what())));
  }
  optimizer_->load(state);
}

}  // namespace dptrain::dp
