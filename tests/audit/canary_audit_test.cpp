#include "dptrain/audit/canary_audit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "dptrain/audit/fdp_bound.h"
#include "dptrain/audit/one_run_bound.h"
#include "error_helpers.h"

namespace dptrain::audit {
namespace {

using dptrain::test_support::expect_error;

GuessChoice choice(std::int64_t k_plus, std::int64_t k_minus) {
  GuessChoice c;
  c.k_plus = k_plus;
  c.k_minus = k_minus;
  return c;
}

TEST(CountCorrectGuesses, RanksByScoreAndBreaksTiesByIndex) {
  // Ranked by (score, index): 4 (-1), 0 (0.5), 2 (1), 5 (1), 3 (2), 1 (3).
  const std::vector<double> scores = {0.5, 3.0, 1.0, 2.0, -1.0, 1.0};
  const std::vector<bool> in = {false, true, false, true, false, true};
  auto v = [&](std::int64_t kp, std::int64_t km) {
    return count_correct_guesses(scores, in, choice(kp, km)).correct;
  };
  EXPECT_EQ(v(2, 2), 4);  // in: 3, 1; out: 4, 0
  EXPECT_EQ(v(0, 3), 3);  // out: 4, 0, 2
  EXPECT_EQ(v(0, 4), 3);  // + 5, which is in
  EXPECT_EQ(v(3, 0), 3);  // in: 5, 3, 1
  EXPECT_EQ(v(4, 0), 3);  // + 2, which is out
  EXPECT_EQ(v(0, 0), 0);
  const GuessOutcome o = count_correct_guesses(scores, in, choice(2, 1));
  EXPECT_EQ(o.canaries, 6);
  EXPECT_EQ(o.guesses, 3);
  EXPECT_EQ(o.correct, 3);
}

TEST(DefaultGuessChoices, AreSymmetricOneTwoFiveSteps) {
  const auto ks = [](std::int64_t m) {
    std::vector<std::int64_t> out;
    for (const GuessChoice& c : default_guess_choices(m)) {
      EXPECT_EQ(c.k_plus, c.k_minus);
      out.push_back(c.k_plus);
    }
    return out;
  };
  EXPECT_EQ(ks(1000), (std::vector<std::int64_t>{10, 20, 50, 100, 200, 500}));
  EXPECT_EQ(ks(399), (std::vector<std::int64_t>{10, 20, 50, 100}));
  EXPECT_EQ(ks(10), (std::vector<std::int64_t>{5}));
  EXPECT_TRUE(ks(1).empty());
}

TEST(AuditCanaries, TakesTheBestChoiceAtTheBonferroniLevel) {
  // Perfectly separated scores: the k+ highest are all in.
  std::mt19937_64 rng(7);
  std::vector<double> scores(400);
  std::vector<bool> in(400);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    in[i] = (rng() & 1) != 0;
    scores[i] = (in[i] ? 10.0 : 0.0) + static_cast<double>(i % 7);
  }
  CanaryAuditOptions o;
  o.choices = {choice(10, 10), choice(50, 50), choice(150, 0)};
  o.bound_options.alpha = 0.06;
  for (AuditBound bound :
       {AuditBound::kOneRun, AuditBound::kGdp, AuditBound::kFdpApproxDp}) {
    o.bound = bound;
    const CanaryAudit a = audit_canaries(scores, in, o);
    EXPECT_EQ(a.choices_tried, 3);
    EXPECT_DOUBLE_EQ(a.level_per_choice, 0.02);
    LowerBoundOptions per = o.bound_options;
    per.alpha = 0.02;
    double best = 0.0;
    for (const GuessChoice& c : o.choices) {
      const GuessOutcome g = count_correct_guesses(scores, in, c);
      const double eps =
          bound == AuditBound::kOneRun ? one_run_epsilon_lower_bound(g, per)
          : bound == AuditBound::kGdp  ? gdp_lower_bound(g, per).epsilon
                                       : fdp_epsilon_lower_bound(g, per);
      best = std::max(best, eps);
    }
    EXPECT_EQ(a.epsilon, best);
    EXPECT_GT(a.epsilon, 0.0);
    EXPECT_EQ(a.outcome.correct, a.outcome.guesses);  // separated scores
    EXPECT_EQ(bound == AuditBound::kGdp, a.mu > 0.0);
  }
}

// μ-GDP canaries: the score of an excluded canary is N(0, 1), of an
// included one N(μ, 1), so each coin is protected by exactly μ-GDP.
struct GaussianTrials {
  std::vector<double> epsilon;
  std::vector<double> mu;
};

GaussianTrials gaussian_trials(double mu, std::int64_t m, int trials,
                               AuditBound bound, std::uint64_t seed) {
  GaussianTrials out;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  CanaryAuditOptions o;
  o.bound = bound;
  o.bound_options.delta = 1e-5;
  o.bound_options.alpha = 0.05;
  o.bound_options.tolerance = 1e-4;
  for (int t = 0; t < trials; ++t) {
    std::vector<double> scores(static_cast<std::size_t>(m));
    std::vector<bool> in(static_cast<std::size_t>(m));
    for (std::size_t i = 0; i < scores.size(); ++i) {
      in[i] = (rng() >> 63) != 0;
      scores[i] = normal(rng) + (in[i] ? mu : 0.0);
    }
    const CanaryAudit a = audit_canaries(scores, in, o);
    out.epsilon.push_back(a.epsilon);
    out.mu.push_back(a.mu);
  }
  return out;
}

double mean(const std::vector<double>& x) {
  double s = 0.0;
  for (double v : x) s += v;
  return s / static_cast<double>(x.size());
}

int count_above(const std::vector<double>& x, double limit) {
  return static_cast<int>(
      std::count_if(x.begin(), x.end(), [&](double v) { return v > limit; }));
}

// ε(δ = 1e-5) of 2-GDP: 9.997256146434296 (Python's math.erfc on
// Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2), 200 bisection steps).
constexpr double kMu = 2.0;
constexpr double kTrueEpsilon = 9.997256146434296;

TEST(AuditCanaries, GaussianCanariesStayBelowTheTrueEpsilon) {
  // Each bound may exceed the truth with probability at most alpha = 0.05
  // per trial; 20 trials of each size, so > 4 exceedances would have
  // probability < 0.003 for a valid bound (Binomial(20, 0.05)).
  for (AuditBound bound :
       {AuditBound::kOneRun, AuditBound::kGdp, AuditBound::kFdpApproxDp}) {
    for (std::int64_t m : {1000, 4000}) {
      const auto t = gaussian_trials(kMu, m, 20, bound, 100 + m);
      EXPECT_LE(count_above(t.epsilon, kTrueEpsilon), 4)
          << "bound " << static_cast<int>(bound) << " m=" << m;
      if (bound == AuditBound::kGdp) {
        EXPECT_LE(count_above(t.mu, kMu), 4) << "m=" << m;
      }
    }
  }
}

TEST(AuditCanaries, GaussianBoundGrowsWithTheNumberOfCanaries) {
  for (AuditBound bound :
       {AuditBound::kOneRun, AuditBound::kGdp, AuditBound::kFdpApproxDp}) {
    const auto small = gaussian_trials(kMu, 1000, 8, bound, 1);
    const auto large = gaussian_trials(kMu, 10000, 4, bound, 2);
    EXPECT_GT(mean(large.epsilon), mean(small.epsilon) + 0.1)
        << "bound " << static_cast<int>(bound);
    EXPECT_GT(mean(small.epsilon), 0.5) << "bound " << static_cast<int>(bound);
  }
}

TEST(AuditCanaries, GdpAuditFindsMostOfMuAndBeatsTheOneRunBound) {
  // With 10000 canaries the GDP bound recovers a good part of the true μ
  // (a broken audit that always says 0 passes the validity test), and on
  // Gaussian canaries it is tighter than Steinke et al.'s (Mahloujifar et
  // al.'s claim).
  const auto gdp = gaussian_trials(kMu, 10000, 4, AuditBound::kGdp, 3);
  const auto one_run = gaussian_trials(kMu, 10000, 4, AuditBound::kOneRun, 3);
  EXPECT_GT(mean(gdp.mu), 0.5 * kMu);
  EXPECT_LE(mean(gdp.mu), kMu);
  EXPECT_GT(mean(gdp.epsilon), mean(one_run.epsilon) + 0.5);
}

TEST(AuditCanaries, ErrorsNameTheParameterAndValue) {
  const std::vector<double> scores = {1.0, 2.0, 3.0};
  const std::vector<bool> in = {true, false, true};
  expect_error(
      [&] {
        count_correct_guesses(scores, {true, false}, choice(1, 1));
      },
      "scores and included must have the same size, got 3 and 2");
  expect_error([&] { count_correct_guesses({}, {}, choice(0, 0)); },
               "scores must not be empty, got 0 canaries");
  expect_error(
      [&] {
        count_correct_guesses({1.0, std::numeric_limits<double>::quiet_NaN()},
                              {true, false}, choice(1, 0));
      },
      "scores[1] must be finite, got nan");
  expect_error([&] { count_correct_guesses(scores, in, choice(2, 2)); },
               "k_plus and k_minus must be >= 0 with k_plus + k_minus <= m = "
               "3, got k_plus = 2, k_minus = 2");
  expect_error([&] { count_correct_guesses(scores, in, choice(-1, 0)); },
               "got k_plus = -1, k_minus = 0");
  CanaryAuditOptions o;
  expect_error([&] { audit_canaries({1.0}, {true}, o); },
               "choices must not be empty, got none (m = 1 canaries");
  o.choices = {choice(1, 1), choice(3, 1)};
  expect_error([&] { audit_canaries(scores, in, o); },
               "got k_plus = 3, k_minus = 1");
  o.choices = {choice(1, 1)};
  o.bound = AuditBound::kGdp;
  o.bound_options.delta = 0.0;
  expect_error([&] { audit_canaries(scores, in, o); },
               "delta must be in (0, 1), got 0");
}

}  // namespace
}  // namespace dptrain::audit
