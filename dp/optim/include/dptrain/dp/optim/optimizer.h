#pragma once

// Optimizers for private training. They only post-process the already
// privatised gradient (noise added and divided by the public batch size), so
// they cost no privacy: each is a thin layer over LibTorch's SGD, Adam and
// AdamW. Weight decay uses only the parameters, never the data, and is applied
// inside step() — after the noise, never to the gradient before clipping (where
// it would be clipped, noised and divided by the batch size).

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "dptrain/dp/archive/archive_fwd.h"

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim
namespace dptrain::dp {

/// sgd: momentum and Nesterov optional, weight decay as the L2 term wd·θ added
/// to the noisy gradient inside step(). adam: the same L2 term, then Adam.
/// adamw: decoupled weight decay θ ← θ(1 − lr·wd) (Loshchilov & Hutter).
enum class OptimizerKind { kSgd, kAdam, kAdamW };

/// "sgd", "adam" or "adamw"; throws std::invalid_argument otherwise.
OptimizerKind parse_optimizer_kind(const std::string& name);
std::string to_string(OptimizerKind kind);

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kSgd;
  double lr = 0.1;
  double momentum = 0;      ///< sgd only; in [0, 1)
  bool nesterov = false;    ///< sgd only; needs momentum > 0
  double weight_decay = 0;  ///< >= 0
  double beta1 = 0.9;       ///< adam/adamw; in [0, 1)
  double beta2 = 0.999;     ///< adam/adamw; in [0, 1)
  double eps = 1e-8;        ///< adam/adamw; > 0
};

/// Throws std::invalid_argument naming the field and value when an option is
/// out of range (see OptimizerOptions).
void validate(const OptimizerOptions& options);

/// One optimizer over a fixed list of parameters.
class DpOptimizer {
 public:
  /// Validates `options`; parameters are the model's trainable tensors.
  DpOptimizer(const std::vector<at::Tensor>& parameters,
              const OptimizerOptions& options);
  ~DpOptimizer();
  DpOptimizer(DpOptimizer&&) noexcept;
  DpOptimizer& operator=(DpOptimizer&&) noexcept;

  /// One update from each parameter's .grad as it is; call after
  /// finalize_noisy_gradient. Parameters without .grad are skipped.
  void step();

  /// Drops every .grad (sets it undefined, as LibTorch 2.x's zero_grad does).
  void zero_grad();

  double learning_rate() const;
  /// Sets the learning rate of every parameter group (for schedules).
  /// Throws std::invalid_argument unless lr is finite and > 0.
  void set_learning_rate(double lr);

  const OptimizerOptions& options() const { return options_; }
  torch::optim::Optimizer& torch_optimizer() { return *optimizer_; }

  /// Writes the kind and LibTorch's optimizer state (momentum buffers, Adam
  /// moments, step counts) as a nested archive "state".
  void save(torch::serialize::OutputArchive& archive) const;

  /// Restores what save() wrote. Throws std::runtime_error, changing nothing,
  /// when the kind differs or the state does not fit these parameters.
  void load(torch::serialize::InputArchive& archive);

 private:
  std::vector<at::Tensor> parameters_;
  OptimizerOptions options_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
};

}  // namespace dptrain::dp
