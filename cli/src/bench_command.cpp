// `dptrain bench step --model M --batch-size B [--steps N] [--warmup N]
// [--logical-batch-size L] [--oracle | --only nonprivate|dp|oracle] [--json]`:
// the median time of a non-private and a DP training step on the same model
// and batch, their ratio (whole step, and its forward+backward part alone),
// and the process's peak memory (run one variant per process with
// --only to compare memory; scripts/bench_step.sh does both).
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/bench/step_benchmark.h"
#include "dptrain/dp/layers/autocast.h"
#include "dptrain/train/runtime.h"

namespace dptrain::cli {
namespace {

struct BenchStepFlags {
  bench::StepBenchmarkOptions options;
  bool oracle = false;
  std::string only;
  std::string device = "cpu";
  bool json = false;
  bool profile = false;
  std::string routes = "model";
  std::string mixed_precision = "no";
};

double megabytes(int64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

std::string fixed(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

void print_profile(const bench::StepProfile& p, bool json) {
  if (json) {
    nlohmann::ordered_json out = {{"phases", nlohmann::json::array()},
                                  {"layers", nlohmann::json::array()}};
    for (const auto& ph : p.phases) {
      out["phases"].push_back(
          {{"variant", ph.variant}, {"name", ph.name}, {"ms", ph.ms}});
    }
    for (const auto& l : p.layers) {
      out["layers"].push_back({{"path", l.path},
                               {"type", l.type},
                               {"input", l.input_shape},
                               {"output", l.output_shape},
                               {"norms_ms", l.norms_ms},
                               {"sums_ms", l.sums_ms},
                               {"kept", l.kept},
                               {"route", l.route}});
    }
    std::cout << out.dump(2) << "\n";
    return;
  }
  for (const auto& ph : p.phases) {
    std::cout << std::left << std::setw(11) << ph.variant << std::setw(32)
              << ph.name << std::right << std::setw(10) << fixed(ph.ms, 2)
              << " ms\n";
  }
  std::cout << "\nper layer (DP step): norms ms, sums ms, path, type, "
               "input -> output\n";
  for (const auto& l : p.layers) {
    std::cout << std::setw(9) << fixed(l.norms_ms, 2) << std::setw(9)
              << fixed(l.sums_ms, 2) << (l.kept ? " kept " : "      ") << l.path
              << "  " << l.type << "  " << l.input_shape << " -> "
              << l.output_shape;
    if (!l.route.empty()) std::cout << "  route " << l.route;
    std::cout << "\n";
  }
}

void run_bench_step(BenchStepFlags flags) {
  auto& o = flags.options;
  o.device = train::parse_device(flags.device);
  o.routes = dp::parse_route_search(flags.routes);
  o.mixed_precision = dp::parse_mixed_precision(flags.mixed_precision);
  if (!o.route_cache.empty() && o.routes == dp::RouteSearch::kCostModel) {
    throw std::invalid_argument(
        "--route-cache needs --routes measure or fixed (the cost model reads "
        "no cache)");
  }
  if (flags.profile) {
    print_profile(bench::profile_step(o), flags.json);
    return;
  }
  if (!flags.only.empty()) {
    o.variants = {bench::parse_step_variant(flags.only)};
  } else if (flags.oracle) {
    o.variants.push_back(bench::StepVariant::kOracle);
  }
  const auto r = bench::benchmark_step(o);
  if (flags.json) {
    nlohmann::ordered_json out = {
        {"model", r.model},
        {"batch_size", r.batch_size},
        {"steps", r.steps},
        {"warmup_steps", o.warmup_steps},
        {"parameters", r.parameters},
        {"threads", r.threads},
        {"device", r.device},
        {"mixed_precision", dp::to_string(o.mixed_precision)}};
    auto put = [&out](const char* key, const std::optional<double>& v) {
      if (v) out[key] = *v;
    };
    put("nonprivate_ms", r.nonprivate_ms);
    put("dp_ms", r.dp_ms);
    put("ratio", r.ratio);
    put("nonprivate_gradient_ms", r.nonprivate_gradient_ms);
    put("nonprivate_update_ms", r.nonprivate_update_ms);
    put("dp_gradient_ms", r.dp_gradient_ms);
    put("dp_update_ms", r.dp_update_ms);
    put("gradient_ratio", r.gradient_ratio);
    if (o.logical_batch_size > 0)
      out["logical_batch_size"] = o.logical_batch_size;
    put("logical_ratio", r.logical_ratio);
    put("oracle_ms", r.oracle_ms);
    put("oracle_ratio", r.oracle_ratio);
    out["baseline_rss_mb"] = megabytes(r.baseline_rss_bytes);
    out["peak_rss_mb"] = megabytes(r.peak_rss_bytes);
    out["route_search"] = flags.routes;
    out["routes"] = nlohmann::json::array();
    for (const auto& [path, route] : r.routes) {
      out["routes"].push_back({{"layer", path}, {"route", route}});
    }
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << r.model << ", batch " << r.batch_size << ", " << r.parameters
            << " parameters, " << r.threads << " thread(s), " << r.device
            << (o.mixed_precision == dp::MixedPrecision::kNone
                    ? ""
                    : ", forward in bf16 (autocast)")
            << "; median of " << r.steps << " steps after " << o.warmup_steps
            << " warm-up\n";
  if (r.nonprivate_ms) {
    std::cout << "non-private step: " << fixed(*r.nonprivate_ms, 1) << " ms\n";
  }
  if (r.dp_ms) {
    std::cout << "DP step:          " << fixed(*r.dp_ms, 1) << " ms";
    if (r.ratio) std::cout << " (" << fixed(*r.ratio, 2) << "x non-private)";
    std::cout << "\n";
  }
  if (r.gradient_ratio) {
    std::cout << "  forward+backward (per physical batch): non-private "
              << fixed(*r.nonprivate_gradient_ms, 1) << " ms, DP "
              << fixed(*r.dp_gradient_ms, 1) << " ms ("
              << fixed(*r.gradient_ratio, 2) << "x)\n"
              << "  update (noise + optimizer, per logical step): non-private "
              << fixed(*r.nonprivate_update_ms, 1) << " ms, DP "
              << fixed(*r.dp_update_ms, 1) << " ms\n";
  }
  if (r.logical_ratio) {
    std::cout << "  logical batch of " << o.logical_batch_size << ": "
              << fixed(*r.logical_ratio, 2) << "x non-private\n";
  }
  if (r.oracle_ms) {
    std::cout << "oracle step:      " << fixed(*r.oracle_ms, 1) << " ms";
    if (r.oracle_ratio) {
      std::cout << " (" << fixed(*r.oracle_ratio, 2) << "x non-private)";
    }
    std::cout << "\n";
  }
  std::cout << "peak memory: " << fixed(megabytes(r.peak_rss_bytes), 0)
            << " MB (after set-up " << fixed(megabytes(r.baseline_rss_bytes), 0)
            << " MB; compare variants with --only, one per process)\n";
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", summary_of("bench"));
  cmd->require_subcommand(1);
  auto flags = std::make_shared<BenchStepFlags>();
  auto* step = cmd->add_subcommand(
      "step", "Median time of a non-private vs a DP training step");
  step->add_option("--model", flags->options.model,
                   "cnn, wrn-16-4 (any image model), seq, or a Griffin/Hawk "
                   "config (griffin-tiny, hawk-25m, ...) [default cnn]");
  step->add_option("--batch-size", flags->options.batch_size,
                   "examples per step [default 256]");
  step->add_option("--seq-len", flags->options.seq_len,
                   "tokens per example of the seq model [default 128]");
  step->add_option("--lora-rank", flags->options.lora_rank,
                   "Griffin/Hawk: LoRA adapters of this rank on the blocks' "
                   "Linear layers, the base frozen (0 = full) [default 0]");
  step->add_option("--steps", flags->options.steps,
                   "timed steps per variant [default 10]");
  step->add_option("--warmup", flags->options.warmup_steps,
                   "untimed steps per variant first [default 2]");
  auto* oracle = step->add_flag(
      "--oracle", flags->oracle,
      "also time the microbatch oracle (B backward passes: small B only)");
  step->add_option("--only", flags->only,
                   "run one variant: nonprivate, dp or oracle (for its peak "
                   "memory)")
      ->excludes(oracle);
  step->add_option("--noise-multiplier", flags->options.noise_multiplier,
                   "sigma of the DP step [default 1]");
  step->add_option("--max-grad-norm", flags->options.max_grad_norm,
                   "C of the DP step [default 1]");
  step->add_flag("--secure-noise", flags->options.secure_noise,
                 "ChaCha20 noise (as a release run) instead of seeded noise");
  step->add_option("--logical-batch-size", flags->options.logical_batch_size,
                   "also report the ratio of a whole logical step of L "
                   "examples: L/B gradient phases and one update (L a "
                   "multiple of --batch-size) [default: not reported]");
  step->add_option("--seed", flags->options.seed, "seed [default 0]");
  step->add_option("--device", flags->device,
                   "cpu, cuda, cuda:N or auto [default cpu]");
  step->add_option("--routes", flags->routes,
                   "how the DP step's layer rules pick their routes: model "
                   "(cost model), measure (time each route once per layer "
                   "shape, keep the fastest) or fixed (from --route-cache, "
                   "else the cost model) [default model]");
  step->add_option("--route-cache", flags->options.route_cache,
                   "file of measured routes: read by measure and fixed, "
                   "written by measure [default none]");
  step->add_option("--max-kept-mb", flags->options.max_kept_mb,
                   "bound (MiB) on the per-example gradients the DP step "
                   "keeps for its weighted sums; -1 = no bound [default -1]");
  step->add_option("--backward-passes", flags->options.backward_passes,
                   "DP step: 1 (one backward) or 2 (norms as gradients "
                   "arrive, then a reweighted backward: less memory) "
                   "[default 1]");
  step->add_option("--mixed-precision", flags->mixed_precision,
                   "no, or bf16: every variant's forward under autocast to "
                   "bf16 (norms, clipped sums and noise in float32; one "
                   "backward pass) [default no]");
  step->add_flag("--json", flags->json, "print one JSON object");
  step->add_flag("--profile", flags->profile,
                 "instead: median time of each phase of both steps and of "
                 "each layer rule of the DP step")
      ->excludes(oracle);
  step->callback([flags] { run_bench_step(*flags); });
}

}  // namespace dptrain::cli
