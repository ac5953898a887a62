#include "dptrain/audit/canary_audit.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "dptrain/audit/fdp_bound.h"
#include "dptrain/audit/one_run_bound.h"
#include "numeric.h"

namespace dptrain::audit {

using detail::fail;
using detail::fmt;

namespace {

void check_canaries(const std::vector<double>& scores,
                    const std::vector<bool>& included) {
  if (scores.size() != included.size()) {
    fail("scores and included must have the same size, got " +
         std::to_string(scores.size()) + " and " +
         std::to_string(included.size()));
  }
  if (scores.empty()) fail("scores must not be empty, got 0 canaries");
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (!std::isfinite(scores[i])) {
      fail("scores[" + std::to_string(i) + "] must be finite, got " +
           fmt(scores[i]));
    }
  }
}

void check_choice(const GuessChoice& choice, std::int64_t m) {
  if (choice.k_plus < 0 || choice.k_minus < 0 ||
      choice.k_plus > m - choice.k_minus) {
    fail("k_plus and k_minus must be >= 0 with k_plus + k_minus <= m = " +
         std::to_string(m) + ", got k_plus = " + std::to_string(choice.k_plus) +
         ", k_minus = " + std::to_string(choice.k_minus));
  }
}

/// Canary indices by increasing score; ties by index, so the order never
/// depends on the coins.
std::vector<std::size_t> rank_by_score(const std::vector<double>& scores) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return scores[a] < scores[b] || (scores[a] == scores[b] && a < b);
  });
  return order;
}

GuessOutcome count_ranked(const std::vector<std::size_t>& order,
                          const std::vector<bool>& included,
                          const GuessChoice& choice) {
  const auto m = static_cast<std::int64_t>(order.size());
  std::int64_t correct = 0;
  for (std::int64_t j = 0; j < choice.k_minus; ++j) {
    if (!included[order[static_cast<std::size_t>(j)]]) ++correct;
  }
  for (std::int64_t j = m - choice.k_plus; j < m; ++j) {
    if (included[order[static_cast<std::size_t>(j)]]) ++correct;
  }
  return {m, choice.k_plus + choice.k_minus, correct};
}

}  // namespace

GuessOutcome count_correct_guesses(const std::vector<double>& scores,
                                   const std::vector<bool>& included,
                                   const GuessChoice& choice) {
  check_canaries(scores, included);
  check_choice(choice, static_cast<std::int64_t>(scores.size()));
  return count_ranked(rank_by_score(scores), included, choice);
}

std::vector<GuessChoice> default_guess_choices(std::int64_t canaries) {
  std::vector<GuessChoice> choices;
  if (canaries < 2) return choices;
  if (canaries < 20) {
    choices.push_back({canaries / 2, canaries / 2});
    return choices;
  }
  for (std::int64_t decade = 10; 2 * decade <= canaries; decade *= 10) {
    for (std::int64_t step : {1, 2, 5}) {
      const std::int64_t k = step * decade;
      if (2 * k <= canaries) choices.push_back({k, k});
    }
  }
  return choices;
}

CanaryAudit audit_canaries(const std::vector<double>& scores,
                           const std::vector<bool>& included,
                           const CanaryAuditOptions& options) {
  check_canaries(scores, included);
  const auto m = static_cast<std::int64_t>(scores.size());
  const std::vector<GuessChoice> choices =
      options.choices.empty() ? default_guess_choices(m) : options.choices;
  if (choices.empty()) {
    fail("choices must not be empty, got none (m = " + std::to_string(m) +
         " canaries gives no default choice)");
  }
  for (const GuessChoice& choice : choices) check_choice(choice, m);
  detail::check_options(options.bound_options,
                        options.bound == AuditBound::kGdp);

  CanaryAudit best;
  best.choices_tried = static_cast<std::int64_t>(choices.size());
  best.level_per_choice =
      options.bound_options.alpha / static_cast<double>(choices.size());
  LowerBoundOptions per_choice = options.bound_options;
  per_choice.alpha = best.level_per_choice;

  const std::vector<std::size_t> order = rank_by_score(scores);
  bool first = true;
  for (const GuessChoice& choice : choices) {
    const GuessOutcome outcome = count_ranked(order, included, choice);
    double epsilon = 0.0;
    double mu = 0.0;
    switch (options.bound) {
      case AuditBound::kOneRun:
        epsilon = one_run_epsilon_lower_bound(outcome, per_choice);
        break;
      case AuditBound::kGdp: {
        const GdpLowerBound gdp = gdp_lower_bound(outcome, per_choice);
        epsilon = gdp.epsilon;
        mu = gdp.mu;
        break;
      }
      case AuditBound::kFdpApproxDp:
        epsilon = fdp_epsilon_lower_bound(outcome, per_choice);
        break;
    }
    // μ orders the GDP bounds (ε is a function of it); ε the others.
    const bool better = options.bound == AuditBound::kGdp
                            ? mu > best.mu
                            : epsilon > best.epsilon;
    if (first || better) {
      best.epsilon = epsilon;
      best.mu = mu;
      best.choice = choice;
      best.outcome = outcome;
      first = false;
    }
  }
  return best;
}

}  // namespace dptrain::audit
