#pragma once

// Learning-rate schedules as pure functions of the step: nothing to save in a
// checkpoint beyond the step itself.

#include <cstdint>
#include <string>

namespace dptrain::dp {

/// constant: the base rate after warm-up. cosine: after warm-up, half a cosine
/// from the base rate down to 0 at total_steps (and 0 after).
enum class LrScheduleKind { kConstant, kCosine };

/// "constant" or "cosine"; throws std::invalid_argument otherwise.
LrScheduleKind parse_lr_schedule_kind(const std::string& name);

struct LrScheduleOptions {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  double base_lr = 0.1;  ///< > 0
  /// Linear warm-up: step t < warmup_steps uses base_lr·(t + 1)/warmup_steps.
  int64_t warmup_steps = 0;
  /// Length of the run; cosine needs total_steps > warmup_steps.
  int64_t total_steps = 0;
};

class LrSchedule {
 public:
  /// Throws std::invalid_argument naming the field and value when base_lr is
  /// not finite and > 0, warmup_steps < 0, or (cosine) total_steps <=
  /// warmup_steps.
  explicit LrSchedule(const LrScheduleOptions& options);

  /// The learning rate of step `step` (0-based: the step about to be taken).
  /// Throws std::invalid_argument if step < 0.
  double at(int64_t step) const;

  const LrScheduleOptions& options() const { return options_; }

 private:
  LrScheduleOptions options_;
};

}  // namespace dptrain::dp
