#include "dptrain/accountant/calibration.h"

#include <cmath>
#include <string>

#include "dptrain/accountant/detail/numeric.h"

namespace dptrain::accountant {

using detail::fail;
using detail::fmt;

std::string to_string(AccountantKind kind) {
  return kind == AccountantKind::kRdp ? "rdp" : "prv";
}

AccountantKind parse_accountant_kind(const std::string& name) {
  if (name == "rdp") return AccountantKind::kRdp;
  if (name == "prv") return AccountantKind::kPrv;
  fail("accountant must be \"rdp\" or \"prv\", got \"" + name + "\"");
}

double guaranteed_epsilon(AccountantKind kind, const EventHistory& events,
                          double delta, const RdpOptions& rdp,
                          const PrvOptions& prv) {
  if (kind == AccountantKind::kRdp) {
    RdpAccountant acc(rdp);
    acc.set_history(events);
    return acc.get_epsilon(delta).epsilon;
  }
  PrvAccountant acc(prv);
  acc.set_history(events);
  return acc.get_epsilon(delta).upper;
}

namespace {

void check_target(double target_epsilon) {
  if (!(target_epsilon > 0.0) || !std::isfinite(target_epsilon)) {
    fail("target_epsilon must be finite and > 0, got " + fmt(target_epsilon));
  }
}

EventHistory with(const EventHistory& prior, const PoissonSampledGaussian& e) {
  EventHistory events = prior;
  events.push_back(e);
  return events;
}

}  // namespace

NoiseCalibration calibrate_noise_multiplier(const NoiseCalibrationOptions& o) {
  check_target(o.target_epsilon);
  detail::check_delta(o.delta);
  validate({o.sample_rate, 1.0, o.steps});
  if (o.steps < 1) fail("steps must be >= 1, got " + std::to_string(o.steps));
  if (!(o.relative_tolerance > 0.0 && o.relative_tolerance <= 0.01)) {
    fail("relative_tolerance must be in (0, 0.01], got " +
         fmt(o.relative_tolerance));
  }
  for (const auto& e : o.prior_events) validate(e);
  auto eps_at = [&](double sigma) {
    return guaranteed_epsilon(
        o.accountant, with(o.prior_events, {o.sample_rate, sigma, o.steps}),
        o.delta, o.rdp, o.prv);
  };
  constexpr double kMaxSigma = 1e6;
  // Start where the answer is likely: RDP's answer for PRV (a few % above
  // PRV's), 1 otherwise. Invariant: eps(hi) <= target < eps(lo).
  double start = 1.0;
  double factor = 2.0;
  if (o.accountant == AccountantKind::kPrv) {
    NoiseCalibrationOptions rdp = o;
    rdp.accountant = AccountantKind::kRdp;
    rdp.relative_tolerance = 1e-3;
    try {
      start = calibrate_noise_multiplier(rdp).noise_multiplier;
      factor = 1.1;
    } catch (const std::invalid_argument&) {
      start = 1.0;  // RDP cannot meet the target; PRV may still
    }
  }
  double lo = 0.0;
  double hi = start;
  double eps_hi = eps_at(hi);
  NoiseCalibration best{hi, eps_hi};
  if (eps_hi <= o.target_epsilon) {
    lo = hi / factor;
    double eps_lo = eps_at(lo);
    while (eps_lo <= o.target_epsilon) {
      hi = lo;
      best = {hi, eps_lo};
      lo = hi / factor;
      if (lo < 1e-3) {
        fail("target_epsilon=" + fmt(o.target_epsilon) +
             " is met even by noise_multiplier=" + fmt(hi) +
             "; the calibration only searches down to 1e-3");
      }
      eps_lo = eps_at(lo);
    }
  } else {
    while (eps_hi > o.target_epsilon) {
      lo = hi;
      hi *= factor;
      if (hi > kMaxSigma) {
        fail("no noise_multiplier up to " + fmt(kMaxSigma) +
             " reaches target_epsilon=" + fmt(o.target_epsilon) +
             " (delta=" + fmt(o.delta) + ", prior events may have spent it)");
      }
      eps_hi = eps_at(hi);
    }
    best = {hi, eps_hi};
  }
  while (lo < hi * (1.0 - o.relative_tolerance)) {
    const double mid = std::sqrt(lo * hi);
    const double eps_mid = eps_at(mid);
    if (eps_mid <= o.target_epsilon) {
      hi = mid;
      best = {mid, eps_mid};
    } else {
      lo = mid;
    }
  }
  return best;
}

std::int64_t max_steps(const MaxStepsOptions& o) {
  check_target(o.target_epsilon);
  detail::check_delta(o.delta);
  validate({o.sample_rate, o.noise_multiplier, 0});
  if (o.max_steps < 1) {
    fail("max_steps must be >= 1, got " + std::to_string(o.max_steps));
  }
  for (const auto& e : o.prior_events) validate(e);
  auto fits = [&](std::int64_t steps) {
    return guaranteed_epsilon(
               o.accountant,
               with(o.prior_events, {o.sample_rate, o.noise_multiplier, steps}),
               o.delta, o.rdp, o.prv) <= o.target_epsilon;
  };
  std::int64_t lo = 0;  // fits (or 0)
  std::int64_t hi = 1;  // does not fit, once found
  if (o.accountant == AccountantKind::kPrv) {
    // RDP is looser, so its answer is a safe place to start.
    MaxStepsOptions rdp = o;
    rdp.accountant = AccountantKind::kRdp;
    const std::int64_t t = max_steps(rdp);
    if (t >= 1 && fits(t)) {
      lo = t;
      hi = t + std::max<std::int64_t>(1, t / 8);
    }
  }
  if (lo == 0 && !fits(1)) return 0;
  if (lo == 0) lo = 1, hi = 2;
  while (fits(hi)) {
    lo = hi;
    if (hi >= o.max_steps) return o.max_steps;
    hi = std::min(o.max_steps, hi * 2);
  }
  while (hi - lo > 1) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace dptrain::accountant
