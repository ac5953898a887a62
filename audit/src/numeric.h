// Small numeric helpers shared by the audit sources (private).
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

#include "dptrain/accountant/detail/numeric.h"
#include "dptrain/audit/guess_outcome.h"

namespace dptrain::audit::detail {

// The accountant's helpers, not copies of them.
using accountant::detail::fail;
using accountant::detail::fmt;
using accountant::detail::kInf;
using accountant::detail::log_add;
using accountant::detail::norm_cdf;

/// Φ⁻¹(p) for p in [0, 1]; ±inf at the ends.
double norm_quantile(double p);

/// log Φ(−x) for any x, without underflow for large x.
double log_norm_sf(double x);

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
