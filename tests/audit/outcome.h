// The GuessOutcome of m canaries, r guesses and v correct ones, for the
// audit tests.
#pragma once

#include <cstdint>

#include "dptrain/audit/guess_outcome.h"

namespace dptrain::audit::testing {

inline GuessOutcome outcome(std::int64_t m, std::int64_t r, std::int64_t v) {
  GuessOutcome o;
  o.canaries = m;
  o.guesses = r;
  o.correct = v;
  return o;
}

}  // namespace dptrain::audit::testing
