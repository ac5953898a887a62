#include "dptrain/dp/mechanism/privacy_budget.h"

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "dptrain/dp/archive/archive_io.h"

namespace dptrain::dp {
PrivacyBudget::PrivacyBudget(const PrivacyBudgetOptions& options,
                             accountant::EventHistory history)
    : options_(options), history_(std::move(history)) {
  if (!(options.delta > 0 && options.delta < 1)) {
    throw std::invalid_argument("delta must be in (0, 1), got " +
                                detail::short_text(options.delta));
  }
  if (!(options.target_epsilon > 0)) {
    throw std::invalid_argument("target_epsilon must be > 0, got " +
                                detail::short_text(options.target_epsilon));
  }
  for (const auto& event : history_) accountant::validate(event);
}

bool PrivacyBudget::allows_step(
    const accountant::PoissonSampledGaussian& step) {
  accountant::PoissonSampledGaussian one = step;
  one.steps = 1;
  accountant::validate(one);
  if (std::isinf(options_.target_epsilon)) return true;
  const int64_t taken = steps();
  if (!cache_valid_ || cached_rate_ != step.sample_rate ||
      cached_sigma_ != step.noise_multiplier) {
    accountant::MaxStepsOptions query;
    query.target_epsilon = options_.target_epsilon;
    query.delta = options_.delta;
    query.sample_rate = step.sample_rate;
    query.noise_multiplier = step.noise_multiplier;
    query.accountant = options_.accountant;
    query.rdp = options_.rdp;
    query.prv = options_.prv;
    query.prior_events = history_;
    cached_steps_left_ = accountant::max_steps(query);
    cached_rate_ = step.sample_rate;
    cached_sigma_ = step.noise_multiplier;
    cached_at_steps_ = taken;
    cache_valid_ = true;
  }
  return taken - cached_at_steps_ < cached_steps_left_;
}

void PrivacyBudget::record(const accountant::PoissonSampledGaussian& event) {
  accountant::append_event(history_, event);  // validates
  // Steps at another (q, σ) make the cached count of steps left stale.
  if (cache_valid_ && (event.sample_rate != cached_rate_ ||
                       event.noise_multiplier != cached_sigma_)) {
    cache_valid_ = false;
  }
}

double PrivacyBudget::epsilon() const {
  if (steps() == 0) return 0.0;
  return accountant::guaranteed_epsilon(options_.accountant, history_,
                                        options_.delta, options_.rdp,
                                        options_.prv);
}

void PrivacyBudget::save(torch::serialize::OutputArchive& archive) const {
  detail::write_string(archive, "accountant",
                       accountant::to_string(options_.accountant));
  detail::write_double(archive, "delta", options_.delta);
  detail::write_string(archive, "history", accountant::to_json(history_));
}

void PrivacyBudget::load(torch::serialize::InputArchive& archive) {
  detail::expect_same("privacy budget", "accountant",
                      detail::read_string(archive, "accountant"),
                      accountant::to_string(options_.accountant));
  detail::expect_same("privacy budget", "delta",
                      detail::exact_text(detail::read_double(archive, "delta")),
                      detail::exact_text(options_.delta));
  accountant::EventHistory loaded;
  try {
    loaded =
        accountant::events_from_json(detail::read_string(archive, "history"));
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(
        std::string("privacy budget checkpoint has a malformed history: ") +
        e.what());
  }
  history_ = std::move(loaded);
  cache_valid_ = false;
}

}  // namespace dptrain::dp
