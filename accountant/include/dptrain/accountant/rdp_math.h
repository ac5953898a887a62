// The two ways this folder computes log A_α of the sampled Gaussian, exposed
// so tests can check them against each other. Not part of the stable API.
#pragma once

#include <vector>

namespace dptrain::accountant::detail {

/// log A_α for integer α >= 2, by the binomial expansion of A_α − 1 (all
/// terms positive, so tiny q keeps full relative precision).
double log_a_integer(double sample_rate, double noise_multiplier, int order);

/// log A_α for fractional α by Mironov et al.'s two series. Returns false in
/// *converged when the series did not settle within its iteration cap.
double log_a_series(double sample_rate, double noise_multiplier, double order,
                    bool* converged);

/// log A_α = log ∫ N(x; 0, σ²) (1 − q + q e^{(2x−1)/(2σ²)})^α dx by the
/// trapezoid rule in log space (spectrally accurate for this integrand).
double log_a_integral(double sample_rate, double noise_multiplier,
                      double order);

/// The same integral for several fractional orders on one shared grid (what
/// the accountant uses: one exp per grid point and order).
std::vector<double> log_a_integral_many(double sample_rate,
                                        double noise_multiplier,
                                        const std::vector<double>& orders);

/// RDP of one step at each order: integer orders (<= 4096) by
/// log_a_integer's expansion, the others by log_a_integral_many; q = 1 gives
/// α/(2σ²). Inputs are not validated here.
std::vector<double> rdp_curve(double sample_rate, double noise_multiplier,
                              const std::vector<double>& orders);

}  // namespace dptrain::accountant::detail
