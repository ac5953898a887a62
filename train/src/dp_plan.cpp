#include "dptrain/train/dp_plan.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "dptrain/train/private_loop.h"

namespace dptrain::train {

void check_dataset_size(const TrainConfig& c, std::int64_t dataset_size) {
  if (dataset_size <= 0) {
    throw std::invalid_argument("--dataset: the training set is empty");
  }
  if (c.batch_size > dataset_size) {
    throw std::invalid_argument("--batch-size " + std::to_string(c.batch_size) +
                                " is larger than the training set (" +
                                std::to_string(dataset_size) + " examples)");
  }
}

DpPlan make_dp_plan(const TrainConfig& c, std::int64_t dataset_size,
                    double sensitivity, const std::string& privacy_unit,
                    std::optional<double> resumed_noise_multiplier) {
  check_dataset_size(c, dataset_size);
  if (!std::isfinite(sensitivity) || sensitivity <= 0.0) {
    throw std::invalid_argument(
        "the clipping engine reports sensitivity " +
        std::to_string(sensitivity) +
        "; it must be finite and > 0 (check --max-grad-norm)");
  }
  DpPlan p;
  p.dataset_size = dataset_size;
  p.expected_batch_size = c.batch_size;
  p.sample_rate =
      static_cast<double>(c.batch_size) / static_cast<double>(dataset_size);
  p.steps = c.steps;
  if (p.steps == 0) {
    p.steps = accountant::rate_and_steps(
                  {dataset_size, c.batch_size, static_cast<double>(c.epochs)})
                  .steps;
  }
  p.steps_per_epoch = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(std::ceil(1.0 / p.sample_rate)));
  p.max_grad_norm = c.max_grad_norm;
  p.normalized = c.normalize_clipped;
  p.sensitivity = sensitivity;
  p.clipping = c.clipping;
  p.sampler = c.sampler;
  p.accountant = accountant::parse_accountant_kind(c.accountant);
  p.delta = c.delta;
  if (c.target_epsilon > 0) p.target_epsilon = c.target_epsilon;
  p.privacy_unit = privacy_unit;
  p.seeded = c.seed.has_value();

  if (resumed_noise_multiplier) {
    p.noise_multiplier = *resumed_noise_multiplier;
    p.noise_multiplier_source = "checkpoint";
  } else if (p.target_epsilon) {
    accountant::NoiseCalibrationOptions cal;
    cal.target_epsilon = *p.target_epsilon;
    cal.delta = p.delta;
    cal.sample_rate = p.sample_rate;
    cal.steps = p.steps;
    cal.accountant = p.accountant;
    p.noise_multiplier =
        accountant::calibrate_noise_multiplier(cal).noise_multiplier;
    p.noise_multiplier_source = "calibrated";
  } else {
    p.noise_multiplier = c.noise_multiplier;
    p.noise_multiplier_source = "given";
  }
  if (!std::isfinite(p.noise_multiplier) || p.noise_multiplier <= 0.0) {
    throw std::invalid_argument(
        "noise_multiplier " + std::to_string(p.noise_multiplier) + " (" +
        p.noise_multiplier_source + ") must be finite and > 0");
  }
  // The accountant's own check of (q, σ), naming the field.
  accountant::validate(p.step_event());
  return p;
}

std::string DpPlan::to_json() const {
  nlohmann::json j = {
      {"dataset_size", dataset_size},
      {"expected_batch_size", expected_batch_size},
      {"sample_rate", sample_rate},
      {"steps", steps},
      {"steps_per_epoch", steps_per_epoch},
      {"noise_multiplier", noise_multiplier},
      {"noise_multiplier_source", noise_multiplier_source},
      {"max_grad_norm", max_grad_norm},
      {"normalized", normalized},
      {"sensitivity", sensitivity},
      {"noise_stddev", noise_stddev()},
      {"clipping", clipping},
      {"sampler", sampler},
      {"accountant", accountant::to_string(accountant)},
      {"delta", delta},
      {"target_epsilon",
       target_epsilon ? nlohmann::json(*target_epsilon) : nlohmann::json()},
      {"privacy_unit", privacy_unit},
      {"seeded", seeded},
  };
  return j.dump();
}

std::string DpPlan::describe(const std::string& noise,
                             const std::string& sampler_name) const {
  std::ostringstream line;
  line << "plan: " << dataset_size
       << " examples, q = " << format_fixed(sample_rate, 6)
       << " (expected batch " << expected_batch_size << "), " << steps
       << " steps ("
       << format_fixed(static_cast<double>(steps) * sample_rate, 2)
       << " epochs), noise_multiplier = " << format_fixed(noise_multiplier, 4)
       << " (" << noise_multiplier_source
       << "), max_grad_norm = " << max_grad_norm
       << (normalized ? " (normalized)" : "")
       << ", sensitivity = " << sensitivity << ", delta = " << delta
       << ", accountant = " << accountant::to_string(accountant)
       << ", noise = " << noise << ", sampler = " << sampler_name
       << ", adjacency = add/remove " << privacy_unit;
  return line.str();
}

}  // namespace dptrain::train
