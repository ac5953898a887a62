// What a one-run guessing game produced, and how a lower bound is asked of
// it. Shared by the (ε, δ) bound of Steinke et al. and the f-DP bound of
// Mahloujifar et al.
#pragma once

#include <cstdint>

namespace dptrain::audit {

/// The outcome of the game: m canaries, each included in training
/// independently with probability 1/2; the auditor guesses "in" or "out" for
/// r of them (a number fixed before it sees the scores) and abstains on the
/// rest; v of its guesses are right.
struct GuessOutcome {
  std::int64_t canaries = 0;  ///< m >= 1
  std::int64_t guesses = 0;   ///< r, 0 <= r <= m
  std::int64_t correct = 0;   ///< v, 0 <= v <= r
};

/// Throws std::invalid_argument naming the field and its value unless
/// m >= 1 and 0 <= v <= r <= m.
void validate(const GuessOutcome& outcome);

/// How a lower bound is searched for.
struct LowerBoundOptions {
  /// δ of the (ε, δ) claims tested, in [0, 1); the GDP bound converts μ to ε
  /// at this δ and needs it in (0, 1).
  double delta = 1e-5;
  /// Significance level in (0, 1): the bound is wrong with probability at
  /// most alpha (over the canaries' inclusion coins).
  double alpha = 0.05;
  /// Bisection stops when the bracket [lo, hi] has hi − lo <= tolerance
  /// (in ε or μ); the bound returned is lo, an end that was rejected. In
  /// (0, 0.1].
  double tolerance = 1e-6;
};

}  // namespace dptrain::audit
