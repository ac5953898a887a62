// An empirical privacy audit in one real private training run (Steinke,
// Nasr & Jagielski 2023): m white-box Dirac canaries, each included in the
// training set independently with probability 1/2, trained through the same
// PrivateLoop (Poisson sampler, engine, noise, optimizer, accountant) as the
// real examples; each canary's score is the model's total update along its
// direction, and dptrain::audit turns the scores and the secret coins into a
// lower bound on ε at δ, printed beside the ε the accountant claims.
//
// What it proves: a lower bound above the claimed ε means (with probability
// at least 1 − alpha over the coins) that the code does not do what the
// accountant assumes. A bound below it proves nothing about the real data:
// the one-run method certifies only part of a large ε.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dptrain/audit/canary_audit.h"
#include "dptrain/train/config.h"

namespace dptrain::train {

/// Which lower bound the audit computes.
enum class AuditMethod {
  kOneRun,  ///< Steinke et al.: audit::one_run_epsilon_lower_bound
  /// Mahloujifar et al. (ICML 2025) against f_{ε,δ}:
  /// audit::fdp_epsilon_lower_bound (a refutation of (ε, δ)-DP that assumes
  /// nothing about the shape of the privacy curve).
  kFdp,
};

/// "one-run" or "fdp"; throws std::invalid_argument naming --method.
AuditMethod parse_audit_method(const std::string& text);
std::string to_string(AuditMethod method);

/// What the canaries are and how they are scored.
enum class CanaryKind {
  /// White-box: a gradient along one coordinate of norm >= C, scored by the
  /// total update along it (see run_audit).
  kDiracGradient,
  /// Black-box: an input-space example (x ~ N(0, 3²)^16, unlike the real
  /// N(0, 1) data, with a uniformly random label) trained through the full
  /// model with the ordinary loss, scored by minus its loss on the final
  /// model. Much weaker: it measures what the released model reveals, not
  /// what each step does.
  kInputSpace,
};

/// "dirac" or "input"; throws std::invalid_argument naming --canary-kind.
CanaryKind parse_canary_kind(const std::string& text);
std::string to_string(CanaryKind kind);

/// Bugs planted on purpose, for the audit's power tests only: a run with any
/// of them is NOT private (run_audit logs a WARNING saying so). The
/// accountant is always told the configured σ, so the claimed ε is that of a
/// correct run.
struct PlantedFaults {
  /// The noise drawn is noise_scale·σC instead of σC (0: noise off).
  double noise_scale = 1.0;
  /// Per-example gradients are not clipped (the engine's bound is made
  /// infinite); the noise keeps σC.
  bool skip_clipping = false;
  /// Noise added in each of the step's K physical chunks with std σC/K
  /// (adding standard deviations instead of variances): in total σC/√K, a
  /// leak. Planted in its equivalent form (see run_audit).
  bool split_noise_per_chunk = false;
  /// Noise added in each of the K chunks with the full std σC: in total
  /// √K·σC, more noise than claimed, so NOT a privacy violation (each unit
  /// is in exactly one chunk); the audit must not flag it.
  bool full_noise_per_chunk = false;

  bool any() const {
    return noise_scale != 1.0 || skip_clipping || split_noise_per_chunk ||
           full_noise_per_chunk;
  }
};

/// What to audit. `config` gives the privacy and optimisation settings
/// (batch_size, steps, noise_multiplier or target_epsilon, delta,
/// max_grad_norm, lr, max_physical_batch_size, accountant, sampler, seed);
/// its task, data and model fields are not used: the audit trains its own
/// MLP on synthetic data (see run_audit).
struct AuditRunOptions {
  TrainConfig config = default_audit_config();
  std::int64_t canaries = 1000;       ///< m >= 2
  std::int64_t real_examples = 1000;  ///< synthetic training examples >= 1
  /// Each canary's gradient norm, as a multiple of max_grad_norm; >= 1 so
  /// that clipping brings it to exactly C (large so that skipped clipping
  /// shows).
  double canary_norm_factor = 100.0;
  double alpha = 0.05;  ///< the bound is wrong with probability <= alpha
  AuditMethod method = AuditMethod::kOneRun;
  CanaryKind canary_kind = CanaryKind::kDiracGradient;
  PlantedFaults faults;  ///< for power tests only

  /// The audit's defaults: plain SGD (no momentum, no weight decay, so the
  /// update is the sum of the noisy gradients), batch_size 0 = half the
  /// units (q = 1/2: the summed score loses least to subsampling), 50
  /// steps, δ = 1e-5, target ε = 4, C = 1, lr = 0.5, RDP, Poisson sampling,
  /// secure noise (no seed).
  static TrainConfig default_audit_config();
};

/// What an audit run found.
struct AuditRunResult {
  double epsilon_claimed = 0.0;      ///< the accountant's ε at delta
  double epsilon_lower_bound = 0.0;  ///< the audit's, at level alpha
  double delta = 0.0;
  double alpha = 0.0;
  AuditMethod method = AuditMethod::kOneRun;
  CanaryKind canary_kind = CanaryKind::kDiracGradient;
  std::int64_t canaries = 0;           ///< m
  std::int64_t canaries_included = 0;  ///< coins that came up "in"
  audit::GuessChoice choice;           ///< the (k+, k−) of the bound
  std::int64_t guesses = 0;            ///< k+ + k−
  std::int64_t correct = 0;
  std::int64_t choices_tried = 0;
  double noise_multiplier = 0.0;  ///< σ the accountant was told
  double sample_rate = 0.0;       ///< q
  std::int64_t steps = 0;
  bool seeded = false;
  bool faults_planted = false;
  std::vector<double> scores;  ///< score of canary j
  std::vector<bool> included;  ///< coin of canary j
  double wall_seconds = 0.0;
};

/// Trains with canaries and audits.
///
/// Units: real_examples synthetic examples (x ∈ R^16, 4 classes from a
/// random linear teacher) followed by m canary slots; q = B / (N_real + m).
/// Model: x → first (dp::Linear without bias, [H=32, 16 + ⌈m/H⌉]) → ReLU →
/// dp::Linear(32, 4); real rows are zero on the ⌈m/H⌉ canary columns, so
/// their gradients vanish on those columns. Canary j owns the coordinate
/// (r, k) = (j mod H, 16 + j div H) of first's weight: its input is a·e_k
/// with a = 1 if included, 0 if not, and its loss is s·first(x)_r with
/// s = canary_norm_factor·C, so its gradient is exactly s·a·e_(r,k) (no
/// other parameter: the loss does not reach the second layer), clipped to C
/// when a = 1 and exactly 0 when a = 0. An excluded canary is thus an empty
/// slot: Poisson sampling over all slots at the public rate q is exactly
/// Poisson sampling of the included units at rate q, and nothing the loop
/// releases depends on which empty slots were drawn (the sum is divided by
/// the configured B, invariant 3), so the run is the run on the real data
/// plus the included canaries, with q independent of the coins. Score of
/// canary j: −(θ_T − θ_0)[r, k] for every canary, computed before the coins
/// are looked at.
///
/// With canary_kind = kInputSpace the model has no canary columns (16
/// inputs); canary j is a fixed input x_j ~ N(0, 3²)^16 with a uniform label
/// y_j (both from the public seed), its loss the cross-entropy through the
/// full model when included and exactly 0 (a zero gradient: again an empty
/// slot) when not. Score of canary j: −CE(model_T(x_j), y_j), for every
/// canary, before the coins are looked at.
///
/// Faults: noise_scale and the per-chunk faults wrap the loop's noise
/// source (the draw of a step is scaled by noise_scale, 1/√K or √K for the
/// K chunks the step had: K independent draws added chunk by chunk have
/// the distribution of one draw of √K times their std, noise being added
/// to the linear sum); skip_clipping replaces the engine's clipping bound.
///
/// `log` receives the loop's lines and the fault warnings (empty: none).
/// Throws std::invalid_argument naming the flag (--canaries, --alpha, ...)
/// for bad options, and what PrivateLoop and audit::audit_canaries throw.
AuditRunResult run_audit(
    const AuditRunOptions& options,
    const std::function<void(const std::string&)>& log = {});

/// The result as a JSON object text: epsilon_claimed, epsilon_lower_bound,
/// canaries, canaries_included, alpha, confidence, delta, method,
/// canary_kind, k_plus,
/// k_minus, guesses, correct, choices_tried, noise_multiplier, sample_rate,
/// steps, seeded, faults_planted, violation (lower bound > claimed).
std::string audit_result_json(const AuditRunResult& result);

}  // namespace dptrain::train
