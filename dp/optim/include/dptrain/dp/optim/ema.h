#pragma once

// Averages of the parameter iterates, evaluated alongside the last iterate
// (De et al. 2022). Averaging is post-processing of private iterates: no
// privacy cost. Each average keeps its own copy of the parameters, on their
// device and dtype.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/dp/archive/archive_fwd.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn
namespace dptrain::dp {

/// avg ← avg + w_t·(θ − avg) at the t-th update (t = 0, 1, ...), starting
/// from a copy of the parameters at construction.
class ParameterAverage {
 public:
  virtual ~ParameterAverage() = default;

  /// Folds the current parameters into the average; they must be the same
  /// number, shapes and dtypes as at construction (std::invalid_argument).
  void update(const std::vector<at::Tensor>& parameters);
  void update(const torch::nn::Module& model);

  /// Writes the average into the parameters (e.g. before saving a model).
  void copy_to(const std::vector<at::Tensor>& parameters) const;
  void copy_to(torch::nn::Module& model) const;

  /// Exchanges parameters and average: call once to evaluate the average,
  /// again to restore the last iterate.
  void swap(const std::vector<at::Tensor>& parameters);
  void swap(torch::nn::Module& model);

  const std::vector<at::Tensor>& averages() const { return averages_; }
  int64_t num_updates() const { return num_updates_; }

  /// The weight w_t of the new iterate at update t.
  virtual double weight(int64_t t) const = 0;
  /// "ema" or "polyak"; stored in checkpoints.
  virtual std::string name() const = 0;

  /// Writes kind, decay, update count and the averages (flat keys).
  void save(torch::serialize::OutputArchive& archive) const;
  /// Restores what save() wrote; throws std::runtime_error, changing nothing,
  /// on a missing entry, another kind or decay, or other shapes.
  void load(torch::serialize::InputArchive& archive);

 protected:
  explicit ParameterAverage(const std::vector<at::Tensor>& parameters);
  virtual double decay() const { return 0; }

 private:
  void check_matches(const std::vector<at::Tensor>& parameters) const;

  std::vector<at::Tensor> averages_;
  int64_t num_updates_ = 0;
};

/// Exponential moving average with warm-up: μ_t = min(decay, (1 + t)/(10 + t))
/// and avg ← μ_t·avg + (1 − μ_t)·θ, so early averages forget the
/// initialisation quickly (t counts previous updates: the first uses μ = 0.1).
class Ema final : public ParameterAverage {
 public:
  /// Throws std::invalid_argument unless decay is in [0, 1).
  Ema(const std::vector<at::Tensor>& parameters, double decay);
  explicit Ema(const torch::nn::Module& model, double decay);

  double weight(int64_t t) const override;
  std::string name() const override { return "ema"; }
  /// μ_t of update t.
  double decay_at(int64_t t) const;

 protected:
  double decay() const override { return decay_; }

 private:
  double decay_;
};

/// Polyak–Ruppert averaging: the uniform mean of the iterates passed to
/// update() (w_t = 1/(t + 1)); before any update, the initial parameters.
class PolyakAverage final : public ParameterAverage {
 public:
  explicit PolyakAverage(const std::vector<at::Tensor>& parameters);
  explicit PolyakAverage(const torch::nn::Module& model);

  double weight(int64_t t) const override;
  std::string name() const override { return "polyak"; }
};

}  // namespace dptrain::dp
