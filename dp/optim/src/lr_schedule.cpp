#include "dptrain/dp/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "dptrain/dp/archive/archive_io.h"

namespace dptrain::dp {

LrScheduleKind parse_lr_schedule_kind(const std::string& name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "cosine") return LrScheduleKind::kCosine;
  throw std::invalid_argument(
      "lr_schedule must be one of constant, cosine, got '" + name + "'");
}

LrSchedule::LrSchedule(const LrScheduleOptions& options) : options_(options) {
  if (!(std::isfinite(options.base_lr) && options.base_lr > 0)) {
    throw std::invalid_argument("lr must be > 0, got " +
                                detail::short_text(options.base_lr));
  }
  if (options.warmup_steps < 0) {
    throw std::invalid_argument("warmup_steps must be >= 0, got " +
                                std::to_string(options.warmup_steps));
  }
  if (options.kind == LrScheduleKind::kCosine &&
      options.total_steps <= options.warmup_steps) {
    throw std::invalid_argument("total_steps must be > warmup_steps (" +
                                std::to_string(options.warmup_steps) +
                                ") for a cosine schedule, got " +
                                std::to_string(options.total_steps));
  }
}

double LrSchedule::at(int64_t step) const {
  if (step < 0) {
    throw std::invalid_argument("step must be >= 0, got " +
                                std::to_string(step));
  }
  const double base = options_.base_lr;
  const int64_t warmup = options_.warmup_steps;
  if (step < warmup) {
    return base * static_cast<double>(step + 1) / static_cast<double>(warmup);
  }
  if (options_.kind == LrScheduleKind::kConstant) return base;
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup) /
                        static_cast<double>(options_.total_steps - warmup));
  return base * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace dptrain::dp
