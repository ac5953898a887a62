// `dptrain account` (ε for a training run) and `dptrain calibrate` (σ for a
// target ε). Parsing and printing only; dptrain::accountant validates.
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/accountant/calibration.h"
#include "dptrain/accountant/event.h"
#include "dptrain/accountant/prv_accountant.h"
#include "dptrain/accountant/rdp_accountant.h"

namespace dptrain::cli {
namespace {

namespace acc = dptrain::accountant;

constexpr const char* kAdjacency =
    "adjacency: add/remove one example; Poisson sampling at rate q";

// Flags shared by both subcommands: the schedule as (q, T) or in epochs.
struct Schedule {
  double sample_rate = 0.0;
  std::int64_t steps = 0;
  std::int64_t dataset_size = 0;
  std::int64_t batch_size = 0;
  double epochs = 0.0;
  CLI::Option* sample_rate_opt = nullptr;
  CLI::Option* steps_opt = nullptr;
  CLI::Option* dataset_size_opt = nullptr;
  CLI::Option* batch_size_opt = nullptr;
  CLI::Option* epochs_opt = nullptr;

  void add_to(CLI::App* cmd) {
    sample_rate_opt = cmd->add_option("--sample-rate", sample_rate,
                                      "Poisson sampling rate q per step");
    steps_opt = cmd->add_option("--steps", steps, "number of steps T");
    dataset_size_opt = cmd->add_option(
        "--dataset-size", dataset_size,
        "N, with --batch-size and --epochs instead of --sample-rate/--steps: "
        "q = B/N, T = ceil(E*N/B)");
    batch_size_opt =
        cmd->add_option("--batch-size", batch_size, "expected batch size B");
    epochs_opt =
        cmd->add_option("--epochs", epochs, "epochs E (may be fractional)");
    for (auto* o : {sample_rate_opt, steps_opt}) {
      o->excludes(dataset_size_opt)
          ->excludes(batch_size_opt)
          ->excludes(epochs_opt);
    }
  }

  // (q, T) from whichever form was given.
  acc::RateAndSteps resolve() const {
    const bool direct = sample_rate_opt->count() > 0 || steps_opt->count() > 0;
    const bool epochs_form = dataset_size_opt->count() > 0 ||
                             batch_size_opt->count() > 0 ||
                             epochs_opt->count() > 0;
    if (direct && sample_rate_opt->count() > 0 && steps_opt->count() > 0) {
      return {sample_rate, steps};
    }
    if (epochs_form && dataset_size_opt->count() > 0 &&
        batch_size_opt->count() > 0 && epochs_opt->count() > 0) {
      return acc::rate_and_steps({dataset_size, batch_size, epochs});
    }
    throw std::invalid_argument(
        "give --sample-rate and --steps, or --dataset-size, --batch-size and "
        "--epochs");
  }
};

std::vector<double> parse_orders(const std::string& text) {
  if (text == "default") return acc::default_orders();
  if (text == "opacus") return acc::opacus_orders();
  std::vector<double> orders;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t used = 0;
    double value = 0.0;
    try {
      value = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size()) {
      throw std::invalid_argument(
          "--orders must be default, opacus or a comma-separated list of "
          "numbers, got \"" +
          text + "\"");
    }
    orders.push_back(value);
  }
  return orders;
}

// The accountant for --orders; its errors (too many orders, an order out of
// range) come back naming the flag. The library checks every order before it
// allocates anything from one.
acc::RdpAccountant make_rdp_accountant(const std::string& text) {
  std::vector<double> orders = parse_orders(text);
  try {
    return acc::RdpAccountant(acc::RdpOptions{std::move(orders)});
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--orders: ") + e.what());
  }
}

std::string fmt(double x, const char* spec = "%.6g") {
  char buf[48];
  std::snprintf(buf, sizeof buf, spec, x);
  return buf;
}

struct AccountOptions {
  Schedule schedule;
  double noise_multiplier = 0.0;
  double delta = 0.0;
  std::string accountant = "rdp";
  std::string orders = "default";
  double eps_error = 0.01;
  bool json = false;
};

void run_account(const AccountOptions& o) {
  const acc::RateAndSteps rs = o.schedule.resolve();
  const acc::AccountantKind kind = acc::parse_accountant_kind(o.accountant);
  const acc::PoissonSampledGaussian event{rs.sample_rate, o.noise_multiplier,
                                          rs.steps};
  nlohmann::ordered_json out;
  std::ostringstream text;
  text << "accountant: " << o.accountant << "\n"
       << "sample_rate: " << fmt(rs.sample_rate)
       << "  noise_multiplier: " << fmt(o.noise_multiplier)
       << "  steps: " << rs.steps << "  delta: " << fmt(o.delta) << "\n";
  if (kind == acc::AccountantKind::kRdp) {
    acc::RdpAccountant rdp = make_rdp_accountant(o.orders);
    rdp.compose(event);
    const acc::RdpEpsilon e = rdp.get_epsilon(o.delta);
    out["epsilon"] = e.epsilon;
    out["order"] = e.order;
    text << "epsilon: " << fmt(e.epsilon) << " (RDP order " << fmt(e.order)
         << ")\n";
  } else {
    acc::PrvAccountant prv(acc::PrvOptions{o.eps_error, 0.0});
    prv.compose(event);
    const acc::PrvEpsilon e = prv.get_epsilon(o.delta);
    out["epsilon"] = e.estimate;
    out["epsilon_lower"] = e.lower;
    out["epsilon_upper"] = e.upper;
    out["eps_error"] = o.eps_error;
    text << "epsilon: " << fmt(e.estimate) << " (estimate; bounds ["
         << fmt(e.lower) << ", " << fmt(e.upper) << "] for eps_error "
         << fmt(o.eps_error) << "; the upper bound is the guarantee)\n";
  }
  out["delta"] = o.delta;
  out["accountant"] = o.accountant;
  out["sample_rate"] = rs.sample_rate;
  out["noise_multiplier"] = o.noise_multiplier;
  out["steps"] = rs.steps;
  out["adjacency"] = "add_remove";
  if (o.json) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << text.str() << kAdjacency << "\n";
  }
}

struct CalibrateOptions {
  Schedule schedule;
  double target_epsilon = 0.0;
  double delta = 0.0;
  std::string accountant = "rdp";
  double eps_error = 0.01;
  bool json = false;
};

void run_calibrate(const CalibrateOptions& o) {
  const acc::RateAndSteps rs = o.schedule.resolve();
  acc::NoiseCalibrationOptions c;
  c.target_epsilon = o.target_epsilon;
  c.delta = o.delta;
  c.sample_rate = rs.sample_rate;
  c.steps = rs.steps;
  c.accountant = acc::parse_accountant_kind(o.accountant);
  c.prv.eps_error = o.eps_error;
  const acc::NoiseCalibration r = acc::calibrate_noise_multiplier(c);
  if (o.json) {
    nlohmann::ordered_json out;
    out["noise_multiplier"] = r.noise_multiplier;
    out["epsilon"] = r.epsilon;
    out["target_epsilon"] = o.target_epsilon;
    out["delta"] = o.delta;
    out["accountant"] = o.accountant;
    out["sample_rate"] = rs.sample_rate;
    out["steps"] = rs.steps;
    out["adjacency"] = "add_remove";
    std::cout << out.dump() << "\n";
    return;
  }
  std::cout << "accountant: " << o.accountant << "\n"
            << "sample_rate: " << fmt(rs.sample_rate) << "  steps: " << rs.steps
            << "  delta: " << fmt(o.delta)
            << "  target_epsilon: " << fmt(o.target_epsilon) << "\n"
            << "noise_multiplier: " << fmt(r.noise_multiplier, "%.6f")
            << " (epsilon " << fmt(r.epsilon)
            << (c.accountant == acc::AccountantKind::kPrv ? ", PRV upper bound"
                                                          : "")
            << ")\n"
            << kAdjacency << "\n";
}

}  // namespace

void add_account_commands(CLI::App& app) {
  auto account_opts = std::make_shared<AccountOptions>();
  auto* account = app.add_subcommand("account", summary_of("account"));
  account_opts->schedule.add_to(account);
  account
      ->add_option("--noise-multiplier", account_opts->noise_multiplier,
                   "noise multiplier sigma")
      ->required();
  account->add_option("--delta", account_opts->delta, "delta")->required();
  account
      ->add_option("--accountant", account_opts->accountant,
                   "rdp (Renyi DP) or prv (privacy random variables)")
      ->capture_default_str();
  account
      ->add_option("--orders", account_opts->orders,
                   "RDP orders: default, opacus, or a list such as 2,4.5,8")
      ->capture_default_str();
  account
      ->add_option("--eps-error", account_opts->eps_error,
                   "PRV: width of the epsilon error band")
      ->capture_default_str();
  account->add_flag("--json", account_opts->json, "print one JSON object");
  account->callback([account_opts] { run_account(*account_opts); });

  auto cal_opts = std::make_shared<CalibrateOptions>();
  auto* calibrate = app.add_subcommand("calibrate", summary_of("calibrate"));
  calibrate
      ->add_option("--target-epsilon", cal_opts->target_epsilon,
                   "target epsilon")
      ->required();
  calibrate->add_option("--delta", cal_opts->delta, "delta")->required();
  cal_opts->schedule.add_to(calibrate);
  calibrate->add_option("--accountant", cal_opts->accountant, "rdp or prv")
      ->capture_default_str();
  calibrate
      ->add_option("--eps-error", cal_opts->eps_error,
                   "PRV: width of the epsilon error band")
      ->capture_default_str();
  calibrate->add_flag("--json", cal_opts->json, "print one JSON object");
  calibrate->callback([cal_opts] { run_calibrate(*cal_opts); });
}

}  // namespace dptrain::cli
