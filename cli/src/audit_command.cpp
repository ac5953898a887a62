// `dptrain audit` (a private training run with canaries, audited) and
// `dptrain audit bound` (the lower bound from score files). Parsing and
// printing only; dptrain::train and dptrain::audit validate.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/audit/canary_audit.h"
#include "dptrain/audit/score_file.h"
#include "dptrain/train/audit_run.h"
#include "dptrain/train/config.h"

namespace dptrain::cli {
namespace {

// Exit status when the audited lower bound exceeds the claimed ε.
constexpr int kViolationExit = 2;

std::string audit_number(double x, const char* spec = "%.4f") {
  char buf[48];
  std::snprintf(buf, sizeof buf, spec, x);
  return buf;
}

struct AuditFlags {
  std::string config;
  std::int64_t canaries = 0;
  std::int64_t real_examples = 1000;
  std::optional<std::int64_t> steps;
  std::optional<std::int64_t> batch_size;
  std::optional<std::int64_t> max_physical_batch_size;
  std::optional<double> noise_multiplier;
  std::optional<double> target_epsilon;
  std::optional<double> delta;
  std::optional<double> lr;
  std::optional<std::uint64_t> seed;
  double alpha = 0.05;
  std::string method = "one-run";
  std::string canary_kind = "dirac";
  bool verbose = false;
  bool json = false;
};

void run_audit_command(const AuditFlags& f) {
  train::AuditRunOptions o;
  if (!f.config.empty()) {
    // The file's σ or target ε replaces the audit's default target.
    const double default_target = o.config.target_epsilon;
    o.config.target_epsilon = 0.0;
    train::apply_toml_file(f.config, o.config);
    if (o.config.target_epsilon == 0.0 && o.config.noise_multiplier == 0.0) {
      o.config.target_epsilon = default_target;
    }
    o.config.checkpoint.clear();  // an audit keeps none
    o.config.resume = false;
  }
  o.canaries = f.canaries;
  o.real_examples = f.real_examples;
  o.alpha = f.alpha;
  o.method = train::parse_audit_method(f.method);
  o.canary_kind = train::parse_canary_kind(f.canary_kind);
  if (f.steps) o.config.steps = *f.steps;
  if (f.batch_size) o.config.batch_size = *f.batch_size;
  if (f.max_physical_batch_size)
    o.config.max_physical_batch_size = *f.max_physical_batch_size;
  if (f.noise_multiplier) {
    o.config.noise_multiplier = *f.noise_multiplier;
    if (!f.target_epsilon) o.config.target_epsilon = 0.0;
  }
  if (f.target_epsilon) {
    o.config.target_epsilon = *f.target_epsilon;
    if (!f.noise_multiplier) o.config.noise_multiplier = 0.0;
  }
  if (f.delta) o.config.delta = *f.delta;
  if (f.lr) o.config.lr = *f.lr;
  if (f.seed) o.config.seed = *f.seed;
  const auto log = [&f](const std::string& line) {
    if (f.verbose || line.rfind("WARNING", 0) == 0) std::cerr << line << "\n";
  };
  const train::AuditRunResult r = train::run_audit(o, log);
  const bool violation = r.epsilon_lower_bound > r.epsilon_claimed;
  if (f.json) {
    std::cout << train::audit_result_json(r) << "\n";
  } else {
    std::cout << "audit: " << r.canaries
              << (r.canary_kind == train::CanaryKind::kDiracGradient
                      ? " Dirac canaries ("
                      : " input-space canaries (")
              << r.canaries_included << " included), " << r.steps
              << " steps, sample_rate " << audit_number(r.sample_rate, "%.6g")
              << ", noise_multiplier " << audit_number(r.noise_multiplier)
              << (r.seeded ? ", seeded" : "") << "\n"
              << "epsilon claimed (accountant " << o.config.accountant
              << "): " << audit_number(r.epsilon_claimed) << " at delta "
              << audit_number(r.delta, "%g") << "\n"
              << "epsilon lower bound (" << train::to_string(r.method)
              << "): " << audit_number(r.epsilon_lower_bound)
              << " with confidence "
              << audit_number(100.0 * (1.0 - r.alpha), "%g")
              << "% (k+ = " << r.choice.k_plus << ", k- = " << r.choice.k_minus
              << ": " << r.correct << " of " << r.guesses
              << " guesses correct, best of " << r.choices_tried
              << " choices)\n";
    if (violation) {
      std::cout << "VIOLATION: the audited lower bound exceeds the claimed "
                   "epsilon; the "
                   "training code does not do what the accountant assumes\n";
    } else {
      std::cout << "no violation found (a lower bound below the claim does not "
                   "prove the "
                   "claim)\n";
    }
  }
  if (violation) throw CLI::RuntimeError(kViolationExit);
}

struct BoundFlags {
  std::string in;
  std::string out;
  double delta = 0.0;
  double alpha = 0.05;
  std::string method = "one-run";
  bool json = false;
};

void run_bound_command(const BoundFlags& f) {
  const auto method = train::parse_audit_method(f.method);
  const std::vector<double> in = audit::read_scores(f.in);
  const std::vector<double> out = audit::read_scores(f.out);
  std::vector<double> scores = in;
  scores.insert(scores.end(), out.begin(), out.end());
  std::vector<bool> included(in.size(), true);
  included.insert(included.end(), out.size(), false);
  audit::CanaryAuditOptions o;
  o.bound = method == train::AuditMethod::kOneRun
                ? audit::AuditBound::kOneRun
                : audit::AuditBound::kFdpApproxDp;
  o.bound_options.delta = f.delta;
  o.bound_options.alpha = f.alpha;
  o.bound_options.tolerance = 1e-4;
  const audit::CanaryAudit a = audit::audit_canaries(scores, included, o);
  if (f.json) {
    nlohmann::ordered_json j;
    j["epsilon_lower_bound"] = a.epsilon;
    j["canaries"] = static_cast<std::int64_t>(scores.size());
    j["canaries_in"] = static_cast<std::int64_t>(in.size());
    j["canaries_out"] = static_cast<std::int64_t>(out.size());
    j["alpha"] = f.alpha;
    j["confidence"] = 1.0 - f.alpha;
    j["delta"] = f.delta;
    j["method"] = f.method;
    j["k_plus"] = a.choice.k_plus;
    j["k_minus"] = a.choice.k_minus;
    j["guesses"] = a.outcome.guesses;
    j["correct"] = a.outcome.correct;
    j["choices_tried"] = a.choices_tried;
    std::cout << j.dump() << "\n";
    return;
  }
  std::cout << "canaries: " << scores.size() << " (" << in.size() << " in, "
            << out.size() << " out)\n"
            << "epsilon lower bound (" << f.method
            << "): " << audit_number(a.epsilon) << " at delta "
            << audit_number(f.delta, "%g") << " with confidence "
            << audit_number(100.0 * (1.0 - f.alpha), "%g")
            << "% (k+ = " << a.choice.k_plus << ", k- = " << a.choice.k_minus
            << ": " << a.outcome.correct << " of " << a.outcome.guesses
            << " guesses correct)\n"
            << "valid when each canary was included independently with "
               "probability 1/2 and "
               "the scores were computed without the coins\n";
}

}  // namespace

void add_audit_command(CLI::App& app) {
  auto f = std::make_shared<AuditFlags>();
  auto* audit = app.add_subcommand("audit", summary_of("audit"));
  audit->add_option("--config", f->config,
                    "TOML train config (privacy and optimisation keys; data "
                    "and model keys are "
                    "not used)");
  auto* canaries = audit->add_option("--canaries", f->canaries,
                                     "number of canaries M (>= 2)");
  audit
      ->add_option("--real-examples", f->real_examples,
                   "synthetic training examples")
      ->capture_default_str();
  audit->add_option("--steps", f->steps, "steps T (default 50)");
  audit->add_option("--batch-size", f->batch_size,
                    "expected batch size B (default: half the units)");
  audit->add_option("--max-physical-batch-size", f->max_physical_batch_size,
                    "rows per chunk (default 256)");
  auto* sigma = audit->add_option("--noise-multiplier", f->noise_multiplier,
                                  "noise multiplier");
  audit
      ->add_option("--target-epsilon", f->target_epsilon,
                   "calibrate sigma to this (default 4)")
      ->excludes(sigma);
  audit->add_option("--delta", f->delta, "delta (default 1e-5)");
  audit->add_option("--lr", f->lr, "SGD learning rate (default 0.5)");
  audit->add_option("--seed", f->seed, "seeded run (reproducible, not secret)");
  audit
      ->add_option("--alpha", f->alpha,
                   "level: the bound is wrong with probability <= alpha")
      ->capture_default_str();
  audit
      ->add_option("--method", f->method,
                   "one-run (Steinke et al.) or fdp (Mahloujifar et al.)")
      ->capture_default_str();
  audit
      ->add_option("--canary-kind", f->canary_kind,
                   "dirac (white-box gradient canaries, scored by the update) "
                   "or input (black-box input-space canaries, scored by "
                   "minus their final loss; weaker)")
      ->capture_default_str();
  audit->add_flag("--verbose", f->verbose,
                  "print the training log to standard error");
  audit->add_flag("--json", f->json, "print one JSON object");

  auto b = std::make_shared<BoundFlags>();
  auto* bound = audit->add_subcommand(
      "bound",
      "The lower bound on epsilon from canary scores (one a line) of canaries "
      "known to be in / "
      "out of training, each included independently with probability 1/2.");
  bound->add_option("--in", b->in, "scores of the included canaries")
      ->required();
  bound->add_option("--out", b->out, "scores of the excluded canaries")
      ->required();
  bound->add_option("--delta", b->delta, "delta")->required();
  bound->add_option("--alpha", b->alpha, "level")->capture_default_str();
  bound->add_option("--method", b->method, "one-run or fdp")
      ->capture_default_str();
  bound->add_flag("--json", b->json, "print one JSON object");
  bound->callback([b] { run_bound_command(*b); });

  audit->callback([f, bound, canaries] {
    if (bound->parsed()) return;
    if (canaries->count() == 0) {
      throw std::invalid_argument(
          "give --canaries M (the number of canaries, >= 2)");
    }
    run_audit_command(*f);
  });
}

}  // namespace dptrain::cli
