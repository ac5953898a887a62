// Small numeric helpers shared by the audit sources (private).
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

#include "dptrain/audit/guess_outcome.h"

namespace dptrain::audit::detail {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

/// A double as short text that still identifies it well ("-1", "0.5", "nan").
inline std::string fmt(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", x);
  return buf;
}

[[noreturn]] inline void fail(const std::string& what) {
  throw std::invalid_argument(what);
}

/// Φ(x), the standard normal CDF (erfc keeps the lower tail accurate).
inline double norm_cdf(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

/// Φ⁻¹(p) for p in [0, 1]; ±inf at the ends.
double norm_quantile(double p);

/// log Φ(−x) for any x, without underflow for large x.
double log_norm_sf(double x);

/// log(exp(a) + exp(b)) without overflow.
inline double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double hi = a > b ? a : b;
  const double lo = a > b ? b : a;
  return hi + std::log1p(std::exp(lo - hi));
}

/// Throws std::invalid_argument unless alpha is in (0, 1), the tolerance in
/// (0, 0.1] and δ in [0, 1) (in (0, 1) when `delta_positive`).
void check_options(const LowerBoundOptions& options, bool delta_positive);

/// Throws unless `value` is finite and >= 0, naming it `name`.
void check_nonnegative(double value, const char* name);

/// The largest x in [0, cap] (to `tolerance`) with rejected(x), assuming
/// rejection holds below some point and fails above it: 0 when rejected(0)
/// fails, cap when rejected(cap) holds, else bisection after doubling an
/// upper end from 1. The result was always tested and rejected (or is 0).
double largest_rejected(const std::function<bool(double)>& rejected,
                        double tolerance, double cap);

}  // namespace dptrain::audit::detail
