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
  // Φ(−x) = erfc(x/√2)/2.
  return accountant::detail::log_erfc(x / std::sqrt(2.0)) - std::log(2.0);
}

}  // namespace dptrain::audit::detail
