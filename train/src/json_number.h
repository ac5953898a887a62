// A number for a JSON summary. nlohmann::json writes NaN and infinity as
// null anyway, but without saying so; here the choice is explicit, and a
// json value that is null can be tested for before it is written.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>

namespace dptrain::train {

/// `v`, or null when it is NaN or infinite (a figure that does not exist,
/// e.g. the accuracy of a class without examples).
inline nlohmann::json nan_to_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace dptrain::train
