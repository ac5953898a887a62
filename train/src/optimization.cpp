#include "dptrain/train/optimization.h"

#include <torch/torch.h>

#include <optional>

#include "dptrain/dp/optim/ema.h"
#include "dptrain/dp/optim/lr_schedule.h"
#include "dptrain/dp/optim/optimizer.h"

namespace dptrain::train {

struct Optimization::Impl {
  std::vector<at::Tensor> parameters;
  std::optional<dp::DpOptimizer> optimizer;
  std::optional<dp::LrSchedule> schedule;
  std::optional<dp::Ema> ema;
  std::optional<dp::PolyakAverage> polyak;
  std::int64_t polyak_start = -1;
};

Optimization::Optimization(std::vector<at::Tensor> parameters,
                           torch::nn::Module& /*model*/,
                           const TrainConfig& config, std::int64_t total_steps)
    : impl_(std::make_unique<Impl>()) {
  impl_->parameters = std::move(parameters);
  dp::OptimizerOptions opt;
  opt.kind = dp::parse_optimizer_kind(config.optimizer);
  opt.lr = config.lr;
  opt.momentum = config.momentum;
  opt.nesterov = config.nesterov;
  opt.weight_decay = config.weight_decay;
  impl_->optimizer.emplace(impl_->parameters, opt);
  dp::LrScheduleOptions sched;
  sched.kind = dp::parse_lr_schedule_kind(config.lr_schedule);
  sched.base_lr = config.lr;
  sched.warmup_steps = config.warmup_steps;
  sched.total_steps = total_steps;
  impl_->schedule.emplace(sched);
  if (config.ema_decay > 0)
    impl_->ema.emplace(impl_->parameters, config.ema_decay);
  if (config.polyak_start >= 0) {
    impl_->polyak.emplace(impl_->parameters);
    impl_->polyak_start = config.polyak_start;
  }
}

Optimization::~Optimization() = default;

double Optimization::learning_rate(std::int64_t step) const {
  return impl_->schedule->at(step);
}

void Optimization::step(torch::nn::Module& /*model*/, std::int64_t step) {
  impl_->optimizer->set_learning_rate(learning_rate(step));
  impl_->optimizer->step();
  impl_->optimizer->zero_grad();
  if (impl_->ema) impl_->ema->update(impl_->parameters);
  if (impl_->polyak && step >= impl_->polyak_start)
    impl_->polyak->update(impl_->parameters);
}

bool Optimization::has_ema() const { return impl_->ema.has_value(); }

void Optimization::swap_ema(torch::nn::Module& /*model*/) {
  if (impl_->ema) impl_->ema->swap(impl_->parameters);
}

bool Optimization::has_polyak() const { return impl_->polyak.has_value(); }

std::int64_t Optimization::polyak_updates() const {
  return impl_->polyak ? impl_->polyak->num_updates() : 0;
}

void Optimization::swap_polyak(torch::nn::Module& /*model*/) {
  if (impl_->polyak) impl_->polyak->swap(impl_->parameters);
}

void Optimization::save(torch::serialize::OutputArchive& archive) const {
  torch::serialize::OutputArchive opt;
  impl_->optimizer->save(opt);
  archive.write("optimizer", opt);
  if (impl_->ema) {
    torch::serialize::OutputArchive ema;
    impl_->ema->save(ema);
    archive.write("ema", ema);
  }
  if (impl_->polyak) {
    torch::serialize::OutputArchive polyak;
    impl_->polyak->save(polyak);
    archive.write("polyak", polyak);
  }
}

void Optimization::load(torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive opt;
  if (!archive.try_read("optimizer", opt)) {
    throw std::runtime_error("checkpoint has no optimizer state");
  }
  std::optional<torch::serialize::InputArchive> ema;
  if (impl_->ema) {
    ema.emplace();
    if (!archive.try_read("ema", *ema))
      throw std::runtime_error("checkpoint has no EMA state");
  }
  std::optional<torch::serialize::InputArchive> polyak;
  if (impl_->polyak) {
    polyak.emplace();
    if (!archive.try_read("polyak", *polyak)) {
      throw std::runtime_error("checkpoint has no Polyak average state");
    }
  }
  impl_->optimizer->load(opt);
  if (impl_->ema) impl_->ema->load(*ema);
  if (impl_->polyak) impl_->polyak->load(*polyak);
}

AveragedParameters::AveragedParameters(Optimization* optimization,
                                       torch::nn::Module& model, Average which)
    : optimization_(optimization), model_(model), which_(which) {
  const bool on = optimization != nullptr &&
                  ((which == Average::kEma && optimization->has_ema()) ||
                   (which == Average::kPolyak && optimization->has_polyak()));
  if (!on) which_ = Average::kNone;
  swap();
}

AveragedParameters::~AveragedParameters() { swap(); }

void AveragedParameters::swap() {
  if (which_ == Average::kEma) optimization_->swap_ema(model_);
  if (which_ == Average::kPolyak) optimization_->swap_polyak(model_);
}

}  // namespace dptrain::train
