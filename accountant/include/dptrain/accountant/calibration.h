// Calibration: the noise for a privacy budget, and the steps a budget allows.
#pragma once

#include <cstdint>
#include <string>

#include "dptrain/accountant/prv_accountant.h"
#include "dptrain/accountant/rdp_accountant.h"

namespace dptrain::accountant {

enum class AccountantKind { kRdp, kPrv };

/// "rdp" or "prv".
std::string to_string(AccountantKind kind);
/// Parses "rdp"/"prv"; throws std::invalid_argument naming `accountant`.
AccountantKind parse_accountant_kind(const std::string& name);

/// The ε a calibration compares with the target: RDP's ε, or the PRV upper
/// bound (the guarantee, not the estimate).
double guaranteed_epsilon(AccountantKind kind, const EventHistory& events,
                          double delta, const RdpOptions& rdp = {},
                          const PrvOptions& prv = {});

struct NoiseCalibrationOptions {
  double target_epsilon = 0.0;  ///< > 0
  double delta = 0.0;           ///< in (0, 1)
  double sample_rate = 0.0;     ///< q in (0, 1]
  std::int64_t steps = 0;       ///< T >= 1
  AccountantKind accountant = AccountantKind::kRdp;
  RdpOptions rdp;
  PrvOptions prv;
  /// Bisection stops when the bracket [σ_lo, σ_hi] has σ_lo >= σ_hi·(1−tol).
  double relative_tolerance = 1e-4;
  /// Events that happened before (their ε counts against the budget).
  EventHistory prior_events;
};

struct NoiseCalibration {
  double noise_multiplier = 0.0;  ///< smallest σ found with ε(σ) <= target
  double epsilon = 0.0;           ///< ε(σ) as the accountant reports it
};

/// The smallest σ (to relative_tolerance) whose ε is ≤ target_epsilon, by
/// bisection that always keeps the returned end on the safe side: ε(σ) ≤
/// target < ε(σ·(1 − tol)). Throws std::invalid_argument on bad input or when
/// no σ up to 1e6 meets the target (e.g. prior events already spent it).
NoiseCalibration calibrate_noise_multiplier(
    const NoiseCalibrationOptions& options);

struct MaxStepsOptions {
  double target_epsilon = 0.0;
  double delta = 0.0;
  double sample_rate = 0.0;
  double noise_multiplier = 0.0;
  AccountantKind accountant = AccountantKind::kRdp;
  RdpOptions rdp;
  PrvOptions prv;
  EventHistory prior_events;
  std::int64_t max_steps = std::int64_t{1} << 40;  ///< search cap
};

/// The largest T with ε(prior + T steps) ≤ target (0 when even one step
/// overshoots; max_steps when the cap still fits). Throws
/// std::invalid_argument on bad input.
std::int64_t max_steps(const MaxStepsOptions& options);

}  // namespace dptrain::accountant
