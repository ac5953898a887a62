#include "numeric.h"

#include <boost/math/special_functions/erf.hpp>

namespace dptrain::audit::detail {

double norm_quantile(double p) {
  if (!(p > 0.0)) return -kInf;
  if (!(p < 1.0)) return kInf;
  // Φ⁻¹(p) = −√2 erfc⁻¹(2p); erfc⁻¹ keeps the lower tail accurate.
  return -std::sqrt(2.0) * boost::math::erfc_inv(2.0 * p);
}

double log_norm_sf(double x) {
  const double z = x / std::sqrt(2.0);
  if (z < 25.0) return std::log(0.5 * std::erfc(z));
  // erfc(z) = exp(−z²)/(z√π) · (1 − 1/(2z²) + 3/(2z²)² − …); at z >= 25 the
  // terms fall by >= 1e-3 each, so 8 terms reach 1e-20.
  const double inv = 1.0 / (2.0 * z * z);
  double term = 1.0;
  double sum = 1.0;
  for (int n = 1; n <= 8; ++n) {
    term *= -(2.0 * n - 1.0) * inv;
    sum += term;
  }
  constexpr double kLogSqrtPi = 0.57236494292470008707;
  return -z * z - std::log(z) - kLogSqrtPi + std::log(sum) - std::log(2.0);
}

}  // namespace dptrain::audit::detail
