// Rényi-DP accountant for the Poisson-subsampled Gaussian (Mironov, Talwar,
// Zhang 2019), with the RDP → (ε, δ) conversion of Balle et al. 2020 /
// Canonne, Kamath, Steinke 2020.
#pragma once

#include <cstddef>
#include <vector>

#include "dptrain/accountant/event.h"

namespace dptrain::accountant {

/// Orders of Opacus 1.5's RDPAccountant: 1.1, 1.2, …, 10.9, 12, 13, …, 63.
std::vector<double> opacus_orders();

/// The default grid: Opacus's and dp_accounting 0.6's grids (1.1…10.9 step
/// 0.1, 11…63, 128, 256, 512, 1024) plus extra orders (1.02–1.08, 64–120,
/// between the powers of two, up to 4096), so ε is never above either.
std::vector<double> default_orders();

/// RDP of one step of the Poisson-subsampled Gaussian at order α > 1
/// (bounds both add and remove adjacency). q = 1 gives α / (2σ²) exactly.
/// Integer α: binomial expansion of A_α − 1 in log space; fractional α:
/// trapezoid integration of A_α (tests check it against Mironov et al.'s
/// two-series form).
/// Throws std::invalid_argument on bad q, σ or α (α must be in
/// (1, kMaxRdpOrder]).
double compute_rdp(double sample_rate, double noise_multiplier, double order);

/// The largest RDP order accepted. A fractional order α (or an integer one
/// above 4096) is integrated on a grid of about 3α/min(σ, σ²) points kept in
/// memory (32 bytes each), so an unchecked α is an unchecked allocation:
/// α = 1e9 asked for ~96 GB. At 1e4 that is ~1 MB and ~1 ms at σ = 1 (and
/// ~120 MB at σ = 0.1). 1e4 is above every grid we ship (opacus_orders() ends
/// at 63, default_orders() at 4096; dp_accounting's default ends at 1024).
inline constexpr double kMaxRdpOrder = 1e4;

/// The most orders one accountant takes. Time grows with orders × grid
/// points: 1e4 orders allow a dense grid (1.01…100 step 0.01, milliseconds)
/// and take about 12 s at σ = 1 (45 s at σ = 0.5) in the worst case, every
/// order near kMaxRdpOrder.
inline constexpr std::size_t kMaxRdpOrderCount = 10000;

struct RdpOptions {
  /// At most kMaxRdpOrderCount orders, each finite, > 1 and <= kMaxRdpOrder.
  std::vector<double> orders = default_orders();
};

/// ε for a δ, and the order α that achieved it.
struct RdpEpsilon {
  double epsilon = 0.0;
  double order = 0.0;  ///< the minimising α; 0 when T = 0
};

/// Composes events (add/remove adjacency) and converts to (ε, δ)-DP with
///   ε = min_α  RDP(α) + log1p(−1/α) − (log δ + log α)/(α − 1),
/// or ε = 0 when δ ≥ sqrt(1 − exp(−RDP(α))) (the KL bound).
class RdpAccountant {
 public:
  /// Throws std::invalid_argument when the order list is empty, longer than
  /// kMaxRdpOrderCount, or holds an order that is not finite and > 1 or is
  /// above kMaxRdpOrder (nothing is allocated from an order before then).
  explicit RdpAccountant(RdpOptions options = {});

  /// Adds an event (validated; merged into the last one when q, σ match).
  void compose(const PoissonSampledGaussian& event);
  /// Replaces the history (validating every event), e.g. from a checkpoint.
  void set_history(EventHistory events);
  const EventHistory& history() const { return history_; }
  const std::vector<double>& orders() const { return options_.orders; }

  /// RDP of the composition at each order of orders().
  std::vector<double> rdp() const;

  /// Throws std::invalid_argument unless 0 < δ < 1. T = 0 gives ε = 0.
  RdpEpsilon get_epsilon(double delta) const;

  /// δ(ε) from the same bound, the inverse of get_epsilon:
  ///   δ = min( min_α exp((α−1)(RDP(α) − ε + log1p(−1/α)) − log α),
  ///            min_α sqrt(1 − exp(−RDP(α))), 1 ).
  /// Throws std::invalid_argument unless ε >= 0 and finite.
  double get_delta(double epsilon) const;

 private:
  RdpOptions options_;
  EventHistory history_;
};

}  // namespace dptrain::accountant
