// Privacy-random-variable accountant (Gopi, Lee, Wutschitz 2021, "Numerical
// Composition of Differential Privacy") for the Poisson-subsampled Gaussian.
#pragma once

#include <cstdint>

#include "dptrain/accountant/event.h"

namespace dptrain::accountant {

struct PrvOptions {
  /// Target width of the ε error band: the bounds are the estimate ± about
  /// eps_error. In (0, 1]; a smaller value means a finer grid (grid size
  /// grows as 1/eps_error).
  double eps_error = 0.01;
  /// δ error allowed to the discretisation; 0 means δ/1000 in get_epsilon
  /// and 1e-10 in get_delta. Must be < δ.
  double delta_error = 0.0;
};

/// ε(δ): a lower bound, the estimate, and an upper bound (the guarantee).
struct PrvEpsilon {
  double lower = 0.0;
  double estimate = 0.0;
  double upper = 0.0;
};

/// δ(ε): a lower bound, the estimate, and an upper bound (the guarantee).
struct PrvDelta {
  double lower = 0.0;
  double estimate = 0.0;
  double upper = 0.0;
};

/// Discretises each event's privacy random variable on one uniform grid
/// (mesh and domain chosen from eps_error and delta_error, the domain from
/// RDP tail bounds as in Gopi et al., Remark 5.6), composes with the FFT, and
/// reads ε(δ) or δ(ε) off the composed distribution. Add/remove adjacency:
/// both directions are composed and the worse is reported.
class PrvAccountant {
 public:
  /// Throws std::invalid_argument when eps_error is not in (0, 1] or
  /// delta_error is negative or not finite.
  explicit PrvAccountant(PrvOptions options = {});

  void compose(const PoissonSampledGaussian& event);
  void set_history(EventHistory events);
  const EventHistory& history() const { return history_; }
  const PrvOptions& options() const { return options_; }

  /// Throws std::invalid_argument unless 0 < δ < 1 and delta_error < δ, or
  /// when the grid would exceed kMaxGridSize points or be so large that
  /// floating-point error exceeds delta_error (message says which knob to
  /// turn). T = 0 gives {0, 0, 0}.
  PrvEpsilon get_epsilon(double delta) const;

  /// δ(ε) for ε >= 0; delta_error defaults to 1e-10 here when unset.
  PrvDelta get_delta(double epsilon) const;

  /// Number of grid points the next get_epsilon(delta) would use.
  std::int64_t grid_size(double delta) const;

  static constexpr std::int64_t kMaxGridSize = std::int64_t{1} << 25;

 private:
  PrvOptions options_;
  EventHistory history_;
};

}  // namespace dptrain::accountant
