#include "conv_cost_model.h"

#include <algorithm>

#include "conv_common.h"

namespace dptrain::dp::detail {

Pointwise choose_pointwise_route(int64_t t_row, int64_t in, int64_t out) {
  if (t_row >= 100 && t_row * in * out >= (int64_t{1} << 24)) {
    return Pointwise::kLoop;
  }
  if (in * out >= (int64_t{1} << 18)) return Pointwise::kBmm;
  return Pointwise::kGrouped;
}

double materialise_factor(Pointwise route, double t_row) {
  switch (route) {
    case Pointwise::kLoop:
      return 1.2;
    case Pointwise::kBmm:
      return 1.0 + 48.0 / t_row;
    case Pointwise::kGrouped:
      break;
  }
  return std::max(1.0, 256.0 / t_row);
}

bool conv_ghost_cheaper(int64_t t, int64_t d_in, int64_t out) {
  return 2 * t * (d_in + out) < d_in * out;
}

bool ws_ghost_cheaper(const WsRouteShape& shape) {
  const double t = shape.t_row * static_cast<double>(shape.group_size);
  const double p = shape.pixels * static_cast<double>(shape.group_size);
  const double in = shape.in;
  const double out = shape.out;
  const double d_in = shape.d_in;
  const double limit = static_cast<double>(kMaxKeptElements);
  const double b = static_cast<double>(shape.batch);
  if (b * p * p > limit || b * t * t > limit) return false;
  const bool kept = shape.batch * shape.weight_numel <= kMaxKeptElements;
  const double wgrad = t * d_in * out;
  const double grouped =
      wgrad * materialise_factor(shape.pointwise, shape.t_row) +
      (kept ? 0.0 : wgrad);
  // The t·d_in·(out+1) term (the convolution with c) is charged even
  // though a kept output usually replaces it (projections_from_output):
  // whether it will is only known after this choice (uses_output).
  const double ghost = p * p * in + t * t * out + t * d_in * (out + 1) + wgrad;
  return ghost < grouped;
}

}  // namespace dptrain::dp::detail
