// What happens to the privatised gradient: the optimizer, the learning-rate
// schedule and parameter averaging (EMA), bundled for the trainer. All of it
// is post-processing of the noisy gradient, so none of it costs privacy.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "dptrain/dp/archive/archive_fwd.h"
#include "dptrain/train/config.h"

namespace torch::nn {
class Module;
}
namespace dptrain::train {

/// Optimizer + schedule + EMA + Polyak average as the config says (optimizer,
/// lr, momentum, nesterov, weight_decay, lr_schedule, warmup_steps,
/// ema_decay, polyak_start).
class Optimization {
 public:
  /// `parameters`: the trainable parameters (GradientEngine::parameters()).
  Optimization(std::vector<at::Tensor> parameters, torch::nn::Module& model,
               const TrainConfig& config, std::int64_t total_steps);
  ~Optimization();
  Optimization(const Optimization&) = delete;
  Optimization& operator=(const Optimization&) = delete;

  /// Sets the learning rate of step `step` (0-based), applies the optimizer
  /// to the parameters' .grad, then updates the EMA from `model`.
  void step(torch::nn::Module& model, std::int64_t step);
  /// The learning rate used at `step`.
  double learning_rate(std::int64_t step) const;
  bool has_ema() const;
  /// Exchanges the model's parameters with the EMA's (call twice to undo).
  void swap_ema(torch::nn::Module& model);
  /// Polyak–Ruppert averaging (config.polyak_start >= 0): the uniform mean
  /// of the iterates after steps polyak_start, polyak_start + 1, ...
  bool has_polyak() const;
  /// Iterates averaged so far (0 before polyak_start, or when off).
  std::int64_t polyak_updates() const;
  /// Exchanges the model's parameters with the Polyak average's.
  void swap_polyak(torch::nn::Module& model);

  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Which parameters a model holds for evaluation or export.
enum class Average { kNone, kEma, kPolyak };

/// While alive, `model` holds the chosen average's parameters instead of the
/// last iterate, and gets them back on every exit (exceptions included).
/// Does nothing when `optimization` is null, for Average::kNone, or when
/// that average is off (active() says which).
class AveragedParameters {
 public:
  AveragedParameters(Optimization* optimization, torch::nn::Module& model,
                     Average which);
  ~AveragedParameters();
  AveragedParameters(const AveragedParameters&) = delete;
  AveragedParameters& operator=(const AveragedParameters&) = delete;
  bool active() const { return which_ != Average::kNone; }

 private:
  void swap();
  Optimization* optimization_;
  torch::nn::Module& model_;
  Average which_;
};

}  // namespace dptrain::train
