// The one-run audit in a real private training run: exact Dirac canaries,
// a correct run that the audit does not flag, and each planted bug caught
// (its audited lower bound above the claimed ε). All runs are seeded so that
// the numbers are fixed; the audit's coins come from the seed too.
#include "dptrain/train/audit_run.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "dptrain/dp/clipping/clipping.h"
#include "dptrain/dp/mechanism/poisson_sampler.h"
#include "error_helpers.h"

namespace dptrain::train {
namespace {

using dptrain::test_support::error_of;

// The CI audit: 5000 canaries among 6000 units, q = 3000/6000, 50 steps,
// calibrated to ε = 4 at δ = 1e-5 (σ ≈ 4.26). The score (the update along a
// canary's coordinate) sums over steps, so it loses least to subsampling at
// a large q: at q = 256/6000 and 200 steps the same audit certified only
// 0.73 of the correct run and 4.9 (σ/10) and 3.4 (noise split over 16
// chunks) of the faulty ones. With 5000 canaries the one-run method cannot
// certify more than 5.9 even for a run without noise, so a claimed ε of 4
// leaves room.
AuditRunOptions ci_audit() {
  AuditRunOptions o;
  o.canaries = 5000;
  o.real_examples = 1000;
  o.config.batch_size = 3000;
  o.config.max_physical_batch_size = 256;  // about 12 chunks a step
  o.config.steps = 50;
  o.config.target_epsilon = 4.0;
  o.config.delta = 1e-5;
  o.config.seed = 2024;
  return o;
}

double fdp_bound(const AuditRunResult& r) {
  audit::CanaryAuditOptions o;
  o.bound = audit::AuditBound::kFdpApproxDp;
  o.bound_options.delta = r.delta;
  o.bound_options.alpha = r.alpha;
  o.bound_options.tolerance = 1e-4;
  return audit::audit_canaries(r.scores, r.included, o).epsilon;
}

void print(const char* what, const AuditRunResult& r) {
  std::printf(
      "[audit] %s: claimed %.3f, lower bound %.3f (%s, alpha %.2f, k+ %lld "
      "k- %lld, %lld/%lld correct, sigma %.4f, %.1f s)\n",
      what, r.epsilon_claimed, r.epsilon_lower_bound,
      to_string(r.method).c_str(), r.alpha,
      static_cast<long long>(r.choice.k_plus),
      static_cast<long long>(r.choice.k_minus),
      static_cast<long long>(r.correct), static_cast<long long>(r.guesses),
      r.noise_multiplier, r.wall_seconds);
  std::printf("[audit]   f-DP bound %.3f\n", fdp_bound(r));
}

// Both methods' bounds above the claim: the planted bug is caught.
void expect_caught(const char* what, const AuditRunResult& r) {
  print(what, r);
  EXPECT_FALSE(r.epsilon_lower_bound <= r.epsilon_claimed)
      << "one-run bound not above claim";
  EXPECT_GT(fdp_bound(r), r.epsilon_claimed) << "f-DP bound not above claim";
}

TEST(AuditRun, CanaryScoresAreExactlyTheClippedDiracUpdates) {
  // Noise off: an excluded canary's coordinate never moves; an included
  // one's moves by lr·c·C/B each time it is sampled (c = the engine's clip
  // factor for a gradient of norm 100·C), counted by replaying the sampler.
  AuditRunOptions o;
  o.canaries = 40;
  o.real_examples = 60;
  o.config.batch_size = 20;
  o.config.max_physical_batch_size = 7;  // several chunks a step
  o.config.steps = 12;
  o.config.target_epsilon = 0.0;
  o.config.noise_multiplier = 1.0;
  o.config.seed = 7;
  o.faults.noise_scale = 0.0;
  std::vector<std::string> lines;
  const auto r = run_audit(
      o, [&lines](const std::string& line) { lines.push_back(line); });
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0],
            "WARNING: planted fault (noise scaled by 0, for audit power tests "
            "only): this run "
            "is NOT private");
  const std::int64_t n = o.real_examples + o.canaries;
  const dp::PoissonSampler sampler(
      n, static_cast<double>(o.config.batch_size) / n,
      dp::key_from_seed(*o.config.seed), dp::SamplerKey::kReproducible);
  std::vector<int> times(static_cast<std::size_t>(o.canaries), 0);
  for (std::int64_t t = 0; t < o.config.steps; ++t) {
    for (const auto i : sampler.batch_at(t)) {
      if (i >= o.real_examples)
        ++times[static_cast<std::size_t>(i - o.real_examples)];
    }
  }
  const double norm = o.canary_norm_factor * o.config.max_grad_norm;
  const double clipped =
      norm *
      std::min(1.0, o.config.max_grad_norm / (norm + dp::kClipNormEpsilon));
  const double unit =
      o.config.lr * clipped / static_cast<double>(o.config.batch_size);
  int sampled_in = 0;
  for (std::size_t j = 0; j < times.size(); ++j) {
    SCOPED_TRACE("canary " + std::to_string(j));
    if (r.included[j]) {
      EXPECT_NEAR(r.scores[j], unit * times[j], 1e-12);
      sampled_in += times[j] > 0 && r.included[j];
    } else {
      EXPECT_EQ(r.scores[j], 0.0);
    }
  }
  EXPECT_GT(sampled_in, 5)
      << "the test needs included canaries that were sampled";
}

TEST(AuditRun, CorrectRunStaysBelowTheClaimedEpsilon) {
  const auto r = run_audit(ci_audit());
  print("correct run", r);
  EXPECT_NEAR(r.epsilon_claimed, 4.0, 0.05);
  EXPECT_EQ(r.canaries, 5000);
  EXPECT_FALSE(r.faults_planted);
  EXPECT_LE(r.epsilon_lower_bound, r.epsilon_claimed);
  EXPECT_LE(fdp_bound(r), r.epsilon_claimed);
  EXPECT_GT(r.epsilon_lower_bound, 0.0)
      << "the audit should see the canaries at all";
}

TEST(AuditRun, CatchesNoiseOff) {
  auto o = ci_audit();
  o.faults.noise_scale = 0.0;
  const auto r = run_audit(o);
  expect_caught("noise off", r);
}

TEST(AuditRun, CatchesNoiseMultiplierDividedByTen) {
  auto o = ci_audit();
  o.faults.noise_scale = 0.1;
  const auto r = run_audit(o);
  expect_caught("sigma/10", r);
}

TEST(AuditRun, CatchesSkippedClipping) {
  auto o = ci_audit();
  o.faults.skip_clipping = true;
  const auto r = run_audit(o);
  expect_caught("clipping skipped", r);
}

TEST(AuditRun, CatchesNoiseSplitAcrossChunks) {
  // About 12 chunks a step, each with noise σC/K: σC/√K ≈ σC/3.5 in all.
  auto o = ci_audit();
  o.faults.split_noise_per_chunk = true;
  const auto r = run_audit(o);
  expect_caught("noise sigma*C/K per chunk", r);
}

TEST(AuditRun, FullNoisePerChunkIsNoLeakAndNotFlagged) {
  // Noise σC added in each chunk of a step is √K times more noise than the
  // accountant assumes, and each unit is in exactly one chunk: the run is
  // MORE private than claimed, so there is nothing for an audit to catch.
  // (The "per-chunk" bug that is a leak is the split one above.)
  auto o = ci_audit();
  o.faults.full_noise_per_chunk = true;
  const auto r = run_audit(o);
  print("noise sigma*C per chunk", r);
  EXPECT_LE(r.epsilon_lower_bound, r.epsilon_claimed);
}

TEST(AuditRun, FdpMethodIsTheFdpBoundOfTheScores) {
  auto o = ci_audit();
  o.method = AuditMethod::kFdp;
  const auto r = run_audit(o);
  EXPECT_EQ(r.method, AuditMethod::kFdp);
  EXPECT_EQ(r.epsilon_lower_bound, fdp_bound(r));
  EXPECT_LE(r.epsilon_lower_bound, r.epsilon_claimed);
}

// The black-box variant: 200 input-space canaries (x ~ N(0, 3²)^16, random
// labels) beside only 20 real examples, q = 110/220, 500 steps, lr 5, ε = 4
// (σ ≈ 13.0), scored by minus their final loss. Measured (one-run bound):
// correct run 0.000 at seed 2024, 0.000–0.218 over seeds 1–6 and 2024–2026;
// noise off 1.963 at seed 2024, 1.395–2.237 over the same nine seeds, so
// noise off always scores above the correct run, but never above the claim:
// black-box canaries on the final model do not catch noise off here. In the
// white-box CI setting (ci_audit(): 5000 canaries, 1000 real examples, 50
// steps, lr 0.5) input-space canaries gave 0.000 for both, seeds 1–4.
AuditRunOptions input_space_audit() {
  AuditRunOptions o;
  o.canary_kind = CanaryKind::kInputSpace;
  o.canaries = 200;
  o.real_examples = 20;
  o.config.batch_size = 110;
  o.config.steps = 500;
  o.config.lr = 5.0;
  o.config.target_epsilon = 4.0;
  o.config.delta = 1e-5;
  o.config.seed = 2024;
  return o;
}

TEST(AuditRun, InputSpaceCanariesCorrectRunStaysBelowTheClaim) {
  const auto correct = run_audit(input_space_audit());
  print("input-space correct run", correct);
  EXPECT_EQ(correct.canary_kind, CanaryKind::kInputSpace);
  EXPECT_NEAR(correct.epsilon_claimed, 4.0, 0.05);
  EXPECT_LE(correct.epsilon_lower_bound, correct.epsilon_claimed);
  EXPECT_LE(fdp_bound(correct), correct.epsilon_claimed);

  auto o = input_space_audit();
  o.faults.noise_scale = 0.0;
  const auto noise_off = run_audit(o);
  print("input-space noise off", noise_off);
  // Held over nine seeds by hand (see above); NOT above the claim.
  EXPECT_GT(noise_off.epsilon_lower_bound, correct.epsilon_lower_bound);
}

TEST(AuditRun, RejectsBadOptionsNamingTheFlag) {
  auto o = ci_audit();
  o.canaries = 1;
  EXPECT_EQ(error_of([&] { run_audit(o); }),
            "--canaries must be in [2, 1000000], got 1");
  o = ci_audit();
  o.alpha = 1.5;
  EXPECT_EQ(error_of([&] { run_audit(o); }),
            "--alpha must be in (0, 1), got 1.5");
  EXPECT_EQ(error_of([] { parse_audit_method("gdp"); }),
            "--method must be one-run or fdp, got \"gdp\"");
  EXPECT_EQ(error_of([] { parse_canary_kind("box"); }),
            "--canary-kind must be dirac or input, got \"box\"");
  o = ci_audit();
  o.faults.noise_scale = -1;
  EXPECT_EQ(error_of([&] { run_audit(o); }),
            "faults.noise_scale must be >= 0, got -1");
}

}  // namespace
}  // namespace dptrain::train
