// μ-Gaussian differential privacy (Dong, Roth & Su 2022) as (ε, δ)-DP.
#pragma once

namespace dptrain::audit {

/// δ(ε) of μ-GDP, the tight (ε, δ) curve of its tradeoff function
/// (Dong, Roth & Su 2022, Corollary 2.13):
///   δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2),
/// computed in log space (no overflow for large ε). μ = 0 gives 0.
/// Throws std::invalid_argument unless μ >= 0 and ε >= 0, both finite.
double gdp_delta(double mu, double epsilon);

/// The ε of μ-GDP at δ: the smallest ε >= 0 with gdp_delta(mu, ε) <= delta
/// (0 when δ(0) = 2Φ(μ/2) − 1 is already <= δ). Bisection on the decreasing
/// δ(ε); the result is on the safe side (gdp_delta(mu, result) <= delta) and
/// at most 1e-12·max(1, ε) above the root. Throws std::invalid_argument
/// unless μ >= 0 is finite and 0 < δ < 1.
double gdp_epsilon(double mu, double delta);

}  // namespace dptrain::audit
