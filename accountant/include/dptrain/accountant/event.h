// The training run described as a value: what the accountant composes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::accountant {

/// A Gaussian mechanism with noise multiplier σ (noise std = σ · sensitivity),
/// run on a Poisson sample of the data set (each example included
/// independently with probability q), self-composed `steps` times.
///
/// Adjacency: add/remove one example. Every accountant in this folder bounds
/// both directions (a neighbour with one example more, and one with one
/// example less) and reports the worse of the two.
struct PoissonSampledGaussian {
  double sample_rate = 1.0;       ///< q, in (0, 1]
  double noise_multiplier = 1.0;  ///< σ, > 0 and finite
  std::int64_t steps = 1;         ///< T, >= 0
};

/// Throws std::invalid_argument naming the field and value when q is outside
/// (0, 1], σ <= 0, steps < 0, or any field is NaN/infinite.
void validate(const PoissonSampledGaussian& event);

/// Events in the order they happened; composition is commutative, so the
/// order only matters to a reader of the history.
using EventHistory = std::vector<PoissonSampledGaussian>;

/// Total number of steps over all events.
std::int64_t total_steps(const EventHistory& events);

/// Appends `event`, merging it into the last event when (q, σ) are equal.
/// Validates the event first.
void append_event(EventHistory& events, const PoissonSampledGaussian& event);

/// A schedule given in epochs instead of (q, T).
struct EpochSchedule {
  std::int64_t dataset_size = 0;  ///< N > 0
  std::int64_t batch_size = 0;    ///< expected batch size B, 0 < B <= N
  double epochs = 0.0;            ///< E >= 0
};

/// q = B / N and T = ceil(E · N / B) (the last, partial epoch counts as full
/// steps, which can only over-state ε). Throws std::invalid_argument naming
/// the field and value on bad input.
struct RateAndSteps {
  double sample_rate = 0.0;
  std::int64_t steps = 0;
};
RateAndSteps rate_and_steps(const EpochSchedule& schedule);

/// The history as a small JSON document (for checkpoints):
/// {"format":"dptrain.accountant.events","version":1,"adjacency":"add_remove",
///  "events":[{"type":"poisson_sampled_gaussian","sample_rate":q,
///             "noise_multiplier":s,"steps":T}, ...]}
/// Doubles are written with 17 significant digits, so they read back exactly.
std::string to_json(const EventHistory& events);

/// Parses what to_json wrote. Throws std::invalid_argument with the reason
/// and the byte offset on malformed JSON, an unknown format/version/type, a
/// missing field, or an event that fails validate().
EventHistory events_from_json(const std::string& json);

}  // namespace dptrain::accountant
