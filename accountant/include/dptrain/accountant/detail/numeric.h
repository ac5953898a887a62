// Small numeric helpers of the accountant, shared with audit/ (not part of
// the public API: namespace detail).
#pragma once

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

namespace dptrain::accountant::detail {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

/// A double as the shortest text that still identifies it well ("-1", "0.5",
/// "nan", "inf").
inline std::string fmt(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.10g", x);
  return buf;
}

[[noreturn]] inline void fail(const std::string& what) {
  throw std::invalid_argument(what);
}

inline void check_delta(double delta, const char* name = "delta") {
  if (!(delta > 0.0 && delta < 1.0)) {
    fail(std::string(name) + " must be in (0, 1), got " + fmt(delta));
  }
}

/// log(exp(a) + exp(b)) without overflow.
inline double log_add(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double hi = a > b ? a : b;
  const double lo = a > b ? b : a;
  return hi + std::log1p(std::exp(lo - hi));
}

/// log(expm1(x)) for x > 0, accurate for tiny and huge x.
inline double log_expm1(double x) {
  if (x > 36.0) return x + std::log1p(-std::exp(-x));
  return std::log(std::expm1(x));
}

/// log(erfc(x)) for any x; for large x an asymptotic series, so no underflow.
inline double log_erfc(double x) {
  if (x < 25.0) return std::log(std::erfc(x));
  // erfc(x) = exp(-x²)/(x√π) · (1 − 1/(2x²) + 3/(2x²)² − 15/(2x²)³ + …);
  // at x >= 25 the terms fall by ≥ 1e-3 each, so 8 terms reach 1e-20.
  const double inv = 1.0 / (2.0 * x * x);
  double term = 1.0;
  double sum = 1.0;
  for (int n = 1; n <= 8; ++n) {
    term *= -(2.0 * n - 1.0) * inv;
    sum += term;
  }
  constexpr double kLogSqrtPi = 0.57236494292470008707;
  return -x * x - std::log(x) - kLogSqrtPi + std::log(sum);
}

/// Φ(x), the standard normal CDF, and its complement, accurate in both tails.
inline double norm_cdf(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}
inline double norm_sf(double x) { return 0.5 * std::erfc(x / std::sqrt(2.0)); }

}  // namespace dptrain::accountant::detail
