#include "conv_cost_model.h"

#include <algorithm>

#include "builtin_rules.h"

namespace dptrain::dp::detail {

Pointwise choose_pointwise_route(int64_t t_row, int64_t in, int64_t out) {
  if (t_row >= kLoopMinRowPositions && t_row * in * out >= kLoopMinWork) {
    return Pointwise::kLoop;
  }
  if (in * out >= kBmmMinWeight) return Pointwise::kBmm;
  return Pointwise::kGrouped;
}

double materialise_factor(Pointwise route, double t_row) {
  switch (route) {
    case Pointwise::kLoop:
      return kLoopFactor;
    case Pointwise::kBmm:
      return 1.0 + kBmmRowCost / t_row;
    case Pointwise::kGrouped:
      break;
  }
  return std::max(1.0, kGroupedRowCost / t_row);
}

bool conv_ghost_cheaper(int64_t t, int64_t d_in, int64_t out) {
  return kUnfoldCharge * t * (d_in + out) < d_in * out;
}

bool ws_ghost_fits(const WsRouteShape& shape) {
  const double t = shape.t_row * static_cast<double>(shape.group_size);
  const double p = shape.pixels * static_cast<double>(shape.group_size);
  const double limit = static_cast<double>(kMaxKeptElements);
  const double b = static_cast<double>(shape.batch);
  return b * p * p <= limit && b * t * t <= limit;
}

bool ws_ghost_cheaper(const WsRouteShape& shape) {
  if (!ws_ghost_fits(shape)) return false;
  const double t = shape.t_row * static_cast<double>(shape.group_size);
  const double p = shape.pixels * static_cast<double>(shape.group_size);
  const double in = shape.in;
  const double out = shape.out;
  const double d_in = shape.d_in;
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
