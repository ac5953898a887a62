// Both bounds against mechanisms whose distribution of correct guesses is
// computed exactly, by enumerating every inclusion vector and every output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "dptrain/audit/fdp_bound.h"
#include "dptrain/audit/one_run_bound.h"
#include "outcome.h"

namespace dptrain::audit {
namespace {

/// One canary's output: a symbol y with a score, drawn from p_in when the
/// canary is included and from p_out when it is not, independently.
struct Mechanism {
  const char* name;
  double epsilon;  // the mechanism is (epsilon, delta)-DP, and no better
  double delta;
  std::vector<double> score;
  std::vector<double> p_in;
  std::vector<double> p_out;
};

double logistic(double eps) { return std::exp(eps) / (1.0 + std::exp(eps)); }

Mechanism randomized_response(double eps) {
  const double p = logistic(eps);
  return {"randomized response", eps, 0.0, {0.0, 1.0}, {1 - p, p}, {p, 1 - p}};
}

/// Three outputs, likelihood ratios 2.5, 1, 0.4: (log 2.5, 0)-DP.
Mechanism three_levels() {
  return {"three levels",  std::log(2.5),   0.0,
          {0.0, 1.0, 2.0}, {0.2, 0.3, 0.5}, {0.5, 0.3, 0.2}};
}

/// With probability δ the output reveals the coin, else randomized
/// response: (ε, δ)-DP.
Mechanism leaky_response(double eps, double delta) {
  const double p = logistic(eps);
  return {"leaky response",
          eps,
          delta,
          {-1.0, 0.0, 1.0, 2.0},
          {0.0, (1 - delta) * (1 - p), (1 - delta) * p, delta},
          {delta, (1 - delta) * p, (1 - delta) * (1 - p), 0.0}};
}

/// P[V >= v] for v = 0..r when the auditor guesses "in" for the k+ highest
/// scores and "out" for the k− lowest (ties by index), m canaries.
std::vector<double> exact_tail(const Mechanism& mech, int m, int k_plus,
                               int k_minus) {
  const int symbols = static_cast<int>(mech.score.size());
  int outputs = 1;
  for (int i = 0; i < m; ++i) outputs *= symbols;
  std::vector<double> dist(static_cast<std::size_t>(k_plus + k_minus) + 1);
  std::vector<int> y(static_cast<std::size_t>(m));
  std::vector<int> order(static_cast<std::size_t>(m));
  for (int coins = 0; coins < (1 << m); ++coins) {
    for (int code = 0; code < outputs; ++code) {
      double prob = std::ldexp(1.0, -m);
      for (int i = 0, rest = code; i < m; ++i, rest /= symbols) {
        y[i] = rest % symbols;
        prob *= (coins >> i & 1) ? mech.p_in[y[i]] : mech.p_out[y[i]];
      }
      if (prob == 0.0) continue;
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int a, int b) {
        const double sa = mech.score[y[a]];
        const double sb = mech.score[y[b]];
        return sa < sb || (sa == sb && a < b);
      });
      int correct = 0;
      for (int j = 0; j < k_minus; ++j) correct += !(coins >> order[j] & 1);
      for (int j = m - k_plus; j < m; ++j) correct += coins >> order[j] & 1;
      dist[static_cast<std::size_t>(correct)] += prob;
    }
  }
  std::vector<double> tail(dist.size());
  double sum = 0.0;
  for (std::size_t v = dist.size(); v-- > 0;) tail[v] = (sum += dist[v]);
  return tail;
}

/// P[V >= v] for randomized response when the auditor guesses every canary
/// by its output (V is then Binomial(m, q)), by enumeration.
std::vector<double> exact_tail_guessing_outputs(double eps, int m) {
  const double q = logistic(eps);
  std::vector<double> dist(static_cast<std::size_t>(m) + 1);
  for (int coins = 0; coins < (1 << m); ++coins) {
    for (int right = 0; right < (1 << m); ++right) {  // output == coin?
      double prob = std::ldexp(1.0, -m);
      int correct = 0;
      for (int i = 0; i < m; ++i) {
        const bool ok = right >> i & 1;
        prob *= ok ? q : 1 - q;
        correct += ok;
      }
      dist[static_cast<std::size_t>(correct)] += prob;
    }
  }
  std::vector<double> tail(dist.size());
  double sum = 0.0;
  for (std::size_t v = dist.size(); v-- > 0;) tail[v] = (sum += dist[v]);
  return tail;
}

using testing::outcome;

struct Choice {
  int k_plus;
  int k_minus;
};
constexpr int kM = 6;
const std::vector<Choice> kChoices = {{1, 1}, {2, 2}, {3, 3}, {3, 0},
                                      {0, 2}, {2, 1}, {6, 0}};
std::vector<Mechanism> mechanisms() {
  return {randomized_response(1.0), randomized_response(2.5), three_levels(),
          leaky_response(1.0, 0.05), leaky_response(0.3, 0.01)};
}

TEST(OneRunPValue, EqualsTheExactTailOfRandomizedResponse) {
  // With δ = 0 the bound is attained by randomized response.
  for (double eps : {0.5, 1.0, 2.0}) {
    const auto tail = exact_tail_guessing_outputs(eps, 8);
    for (int v = 0; v <= 8; ++v) {
      EXPECT_NEAR(one_run_p_value(outcome(8, 8, v), eps, 0.0), tail[v], 1e-12)
          << "eps=" << eps << " v=" << v;
    }
  }
}

TEST(OneRunPValue, BoundsTheExactTailsOfSmallMechanisms) {
  for (const Mechanism& mech : mechanisms()) {
    for (const Choice& c : kChoices) {
      const auto tail = exact_tail(mech, kM, c.k_plus, c.k_minus);
      const int r = c.k_plus + c.k_minus;
      for (int v = 0; v <= r; ++v) {
        EXPECT_LE(tail[v],
                  one_run_p_value(outcome(kM, r, v), mech.epsilon, mech.delta) +
                      1e-12)
            << mech.name << " eps=" << mech.epsilon << " k+=" << c.k_plus
            << " k-=" << c.k_minus << " v=" << v;
      }
    }
  }
}

TEST(OneRunPValue, IsExceededWhenEpsilonIsUnderstated) {
  // The same check fails for a claim below the mechanism's ε: it can fail.
  const auto tail = exact_tail_guessing_outputs(1.0, 8);
  int exceeded = 0;
  for (int v = 0; v <= 8; ++v) {
    exceeded += tail[v] > one_run_p_value(outcome(8, 8, v), 0.5, 0.0) + 1e-6;
  }
  EXPECT_GE(exceeded, 3);
  // A mechanism that leaks with probability δ is not covered by δ = 0.
  const Mechanism leaky = leaky_response(1.0, 0.05);
  exceeded = 0;
  for (const Choice& c : kChoices) {
    const auto leaky_tail = exact_tail(leaky, kM, c.k_plus, c.k_minus);
    const int r = c.k_plus + c.k_minus;
    for (int v = 0; v <= r; ++v) {
      exceeded +=
          leaky_tail[v] > one_run_p_value(outcome(kM, r, v), 1.0, 0.0) + 1e-6;
    }
  }
  EXPECT_GE(exceeded, 1);
}

TEST(FdpRejects, RejectsOnlyOutcomesThatAreImprobable) {
  // Rejecting f at (v, tau) claims P[V >= v] < tau for every f-DP
  // mechanism; check the claim against the exact tails.
  const std::vector<double> taus = {0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8};
  int rejections = 0;
  auto check = [&](const Mechanism& mech, const InverseBlowUp& curve,
                   const char* curve_name) {
    for (const Choice& c : kChoices) {
      const auto tail = exact_tail(mech, kM, c.k_plus, c.k_minus);
      const int r = c.k_plus + c.k_minus;
      for (int v = 0; v <= r; ++v) {
        for (double tau : taus) {
          if (!fdp_rejects(outcome(kM, r, v), curve, tau)) continue;
          ++rejections;
          EXPECT_LT(tail[v], tau + 1e-12)
              << mech.name << " under " << curve_name << " k+=" << c.k_plus
              << " k-=" << c.k_minus << " v=" << v << " tau=" << tau;
        }
      }
    }
  };
  for (const Mechanism& mech : mechanisms()) {
    check(mech, approx_dp_inverse_blow_up(mech.epsilon, mech.delta),
          "f_{eps,delta}");
  }
  // Randomized response is μ-GDP for μ = 2Φ⁻¹(q): its tradeoff curve is the
  // polygon through (0, 1), (1 − q, 1 − q), (1, 0), and the convex Gaussian
  // curve lies below it when it does at the middle vertex, i.e. when
  // Φ(Φ⁻¹(q) − μ) <= 1 − q. Φ⁻¹(q) by bisection on std::erfc.
  for (double eps : {1.0, 2.5}) {
    const double q = logistic(eps);
    double lo = -10.0;
    double hi = 10.0;
    for (int i = 0; i < 200; ++i) {
      const double mid = 0.5 * (lo + hi);
      (0.5 * std::erfc(-mid / std::sqrt(2.0)) < q ? lo : hi) = mid;
    }
    check(randomized_response(eps), gdp_inverse_blow_up(2.0 * hi), "GDP");
  }
  EXPECT_GT(rejections, 50) << "the check must not be vacuous";
}

TEST(FdpRejects, CatchesAMechanismLessPrivateThanClaimed) {
  // Randomized response with ε = 2.5 audited against ε = 0.5: some rejection
  // claims a probability bound that the exact tail breaks.
  const Mechanism mech = randomized_response(2.5);
  const auto curve = approx_dp_inverse_blow_up(0.5, 0.0);
  int broken = 0;
  for (const Choice& c : kChoices) {
    const auto tail = exact_tail(mech, kM, c.k_plus, c.k_minus);
    const int r = c.k_plus + c.k_minus;
    for (int v = 0; v <= r; ++v) {
      for (double tau : {0.05, 0.1, 0.2, 0.3, 0.5}) {
        broken += fdp_rejects(outcome(kM, r, v), curve, tau) && tail[v] >= tau;
      }
    }
  }
  EXPECT_GT(broken, 0);
}

}  // namespace
}  // namespace dptrain::audit
