#pragma once
// Route choice of the convolution rules (conv_rule.cpp, ws_conv_rule.cpp):
// plain numbers in, a route out, so that the model can be read (and tuned)
// apart from the tensor code.
//
// Per example, with T output positions (times the group size K) and d_in =
// in/groups · kernel area; costs in multiply-adds per example (t = K·T, p =
// K·padded pixels, T_row = positions per row):
//  - Conv1d/Conv2d (conv_ghost_cheaper): ghost iff 2·T·(d_in+out) < d_in·out
//    (the 2 charges for the unfold).
//  - WSConv2d (ws_ghost_cheaper): grouped = t·d_in·out·f, f = max(1,
//    256/T_row) (1 + 48/T_row for pointwise layers) (+ t·d_in·out for the
//    weighted sum unless x is kept); ghost = p²·in + t²·out + t·d_in·(out+1)
//    + t·d_in·out (pixel Gram, G Gram, the two convolutions, the weighted
//    sum). The factor max(1, 256/T_row) is measured: the grouped
//    convolution_backward runs 3–8× slower than the batch weight gradient of
//    equal FLOPs on 8×8 maps (T_row = 64) and at par from 16×16 (WRN-16-4
//    profile, benchmarks/RESULTS.md). Ghost is chosen iff it is the cheaper
//    and B·p², B·t² ≤ kMaxKeptElements (builtin_rules.h). WRN-16-4: ghost on
//    the 8×8 stage (6× fewer multiply-adds there), grouped (kept) elsewhere.
//  - 1×1 kernels with no padding and one group (choose_pointwise_route):
//    see Pointwise.

#include <cstdint>

namespace dptrain::dp::detail {

// How a 1×1 kernel with no padding and one group gets its per-example
// weight gradients x_b = Σ_t g_t a_tᵀ (a plain matrix product; stride
// subsamples the input). Measured at B = 4 and 32 (benchmarks/RESULTS.md):
//  - kLoop, one convolution_backward per example (its K rows): 15–30%
//    faster than the product on large maps and layers (NFNet-F0's 12×12
//    to 48×48 stages: T_row ≥ 100 and T_row·in·out ≥ 2^24); on smaller
//    layers the per-call overhead dominates (WRN-16-4: 2–4× slower);
//  - kBmm, one bmm [out, K·T]×[K·T, in] per example: up to 2.5× faster
//    than the grouped convolution_backward for wide layers (in·out ≥ 2^18,
//    NFNet's 1536×768) but slower for narrow ones (WRN's 64×128);
//  - kGrouped: the general route (also for every non-1×1 kernel).
enum class Pointwise { kGrouped, kLoop, kBmm };

// The tuned constants of the model. Measured on the 2-core Debian 12 VM,
// LibTorch 1.13 CPU (oneDNN, OpenBLAS 0.3.21); figures in
// benchmarks/RESULTS.md.

// kLoop needs T_row ≥ kLoopMinRowPositions and T_row·in·out ≥ kLoopMinWork:
// NFNet-F0's 12×12 to 48×48 1×1 layers (B = 4 and 32), where one
// convolution_backward per example was 15–30% faster than the bmm; below,
// the per-call overhead dominates (WRN-16-4: 2–4× slower). "Image models".
constexpr int64_t kLoopMinRowPositions = 100;
constexpr int64_t kLoopMinWork = int64_t{1} << 24;
// kBmm needs in·out ≥ kBmmMinWeight: up to 2.5× faster than the grouped
// convolution_backward for NFNet's 1536×768 layers, slower for WRN-16-4's
// 64×128 shortcuts. "Image models".
constexpr int64_t kBmmMinWeight = int64_t{1} << 18;
// materialise_factor of kLoop: one convolution_backward per example took
// 1.1–1.3× the batch weight gradient on NFNet-F0's 12×12–48×48 stages
// (B = 4). "Image models".
constexpr double kLoopFactor = 1.2;
// materialise_factor of kBmm is 1 + kBmmRowCost / T_row: the pointwise
// routes took 1.1–2.3× the batch weight gradient on NFNet-F0's 1×1 layers
// at B = 4 (conv_rule.cpp head comment, "Image models"); the per-row form
// and the value 48 are the model's fit, not separately recorded.
constexpr double kBmmRowCost = 48.0;
// materialise_factor of kGrouped is max(1, kGroupedRowCost / T_row): the
// grouped convolution_backward ran 3–8× slower than the batch weight
// gradient of equal FLOPs on 8×8 maps (T_row = 64) and at par from 16×16
// (T_row = 256). WRN-16-4 profile, "Per-example gradient engine".
constexpr double kGroupedRowCost = 256.0;
// conv_ghost_cheaper charges the ghost route kUnfoldCharge·T·(d_in+out):
// T·(d_in+out) for the two Grams' FLOPs, doubled for the unfold copy of the
// patches. A stated charge (conv_rule.cpp head comment); no measurement of
// it is recorded.
constexpr int64_t kUnfoldCharge = 2;

// The route of a layer that is pointwise (1×1 kernel, no padding, one
// group); t_row = output positions per row (0 for an empty output).
Pointwise choose_pointwise_route(int64_t t_row, int64_t in, int64_t out);

// Time of the materialised per-example gradients relative to the batch
// weight gradient of equal FLOPs (measured, see the file comment).
double materialise_factor(Pointwise route, double t_row);

// Conv1d/Conv2d with one group: is the ghost route (unfold, T² Grams)
// cheaper than materialising? t = K·T per example.
bool conv_ghost_cheaper(int64_t t, int64_t d_in, int64_t out);

// What ws_ghost_cheaper needs of a WSConv2d call with one group.
struct WsRouteShape {
  int64_t batch = 0;         // B (examples)
  int64_t group_size = 1;    // K (rows per example)
  double t_row = 0;          // output positions per row
  double pixels = 0;         // padded input pixels per row
  double in = 0;             // input channels
  double out = 0;            // output channels
  double d_in = 0;           // fan-in: in/groups · kernel area
  int64_t weight_numel = 0;  // |W|
  Pointwise pointwise = Pointwise::kGrouped;  // the materialised route
};

// WSConv2d with one group: do the ghost route's Grams fit, B·p² and B·t²
// ≤ kMaxKeptElements (builtin_rules.h)?
bool ws_ghost_fits(const WsRouteShape& shape);

// WSConv2d with one group: ghost (pixel Gram) rather than grouped? Never
// when it does not fit (ws_ghost_fits).
bool ws_ghost_cheaper(const WsRouteShape& shape);

}  // namespace dptrain::dp::detail
