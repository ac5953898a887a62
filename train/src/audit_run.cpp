#include "dptrain/train/audit_run.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/mechanism/noise_generator.h"
#include "dptrain/train/private_loop.h"

namespace dptrain::train {
namespace {

constexpr std::int64_t kRealFeatures = 16;
constexpr std::int64_t kHidden = 32;
constexpr std::int64_t kClasses = 4;
// Canaries above this need a first layer of more than ~3·10⁷ weights.
constexpr std::int64_t kMaxCanaries = 1'000'000;

std::string audit_str(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

// x → first (no bias) → ReLU → second. The canaries use first's output only.
struct AuditMlpImpl : torch::nn::Module {
  AuditMlpImpl(std::int64_t in, std::int64_t hidden, std::int64_t classes)
      : first(register_module(
            "first", dp::Linear(dp::LinearOptions(in, hidden).bias(false)))),
        second(register_module("second", dp::Linear(hidden, classes))) {}
  dp::Linear first;
  dp::Linear second;
};

// The loop's noise source with a planted fault: each step's draw scaled by
// noise_scale and, for the per-chunk faults, by 1/√K or √K for the step's K
// chunks (counted by the task as they are computed; K = 0, an empty batch,
// adds no noise, as a per-chunk implementation would).
class PlantedNoise final : public dp::NoiseGenerator {
 public:
  PlantedNoise(std::unique_ptr<dp::NoiseGenerator> inner, PlantedFaults faults,
               std::shared_ptr<std::int64_t> chunks)
      : inner_(std::move(inner)), faults_(faults), chunks_(std::move(chunks)) {}

  using NoiseGenerator::standard_normal;
  at::Tensor standard_normal(int64_t numel, at::ScalarType dtype) override {
    auto z = inner_->standard_normal(numel, dtype);
    double factor = faults_.noise_scale;
    const auto k = static_cast<double>(*chunks_);
    if (faults_.split_noise_per_chunk)
      factor *= k > 0 ? 1.0 / std::sqrt(k) : 0.0;
    if (faults_.full_noise_per_chunk) factor *= std::sqrt(k);
    *chunks_ = 0;
    if (factor != 1.0) z.mul_(factor);
    return z;
  }
  bool reproducible() const override { return inner_->reproducible(); }
  bool round_once() const override { return inner_->round_once(); }
  std::string name() const override {
    return "planted-fault(" + inner_->name() + ")";
  }
  void save(torch::serialize::OutputArchive& archive) const override {
    inner_->save(archive);
  }
  void load(torch::serialize::InputArchive& archive) override {
    inner_->load(archive);
  }

 private:
  std::unique_ptr<dp::NoiseGenerator> inner_;
  PlantedFaults faults_;
  std::shared_ptr<std::int64_t> chunks_;
};

void validate(const AuditRunOptions& o) {
  if (o.canaries < 2 || o.canaries > kMaxCanaries) {
    throw std::invalid_argument("--canaries must be in [2, " +
                                std::to_string(kMaxCanaries) + "], got " +
                                std::to_string(o.canaries));
  }
  if (o.real_examples < 1) {
    throw std::invalid_argument("real_examples must be >= 1, got " +
                                std::to_string(o.real_examples));
  }
  if (!(std::isfinite(o.alpha) && o.alpha > 0.0 && o.alpha < 1.0)) {
    throw std::invalid_argument("--alpha must be in (0, 1), got " +
                                audit_str(o.alpha));
  }
  if (!(std::isfinite(o.canary_norm_factor) && o.canary_norm_factor >= 1.0)) {
    throw std::invalid_argument("canary_norm_factor must be >= 1, got " +
                                audit_str(o.canary_norm_factor));
  }
  if (!(std::isfinite(o.faults.noise_scale) && o.faults.noise_scale >= 0.0)) {
    throw std::invalid_argument("faults.noise_scale must be >= 0, got " +
                                audit_str(o.faults.noise_scale));
  }
  if (o.faults.split_noise_per_chunk && o.faults.full_noise_per_chunk) {
    throw std::invalid_argument(
        "faults: split_noise_per_chunk and full_noise_per_chunk exclude each "
        "other");
  }
  if (o.config.batch_size < 0) {
    throw std::invalid_argument(
        "--batch-size must be > 0 (or 0 for half the units), got " +
        std::to_string(o.config.batch_size));
  }
  if (o.config.steps <= 0) {
    throw std::invalid_argument("--steps must be > 0 for an audit, got " +
                                std::to_string(o.config.steps));
  }
  if (!o.config.checkpoint.empty() || o.config.resume) {
    throw std::invalid_argument(
        "an audit run keeps no checkpoint (--checkpoint, --resume)");
  }
}

std::string describe(const PlantedFaults& f) {
  std::string out;
  const auto add = [&out](const std::string& s) {
    out += (out.empty() ? "" : ", ") + s;
  };
  if (f.noise_scale != 1.0) add("noise scaled by " + audit_str(f.noise_scale));
  if (f.skip_clipping) add("clipping skipped");
  if (f.split_noise_per_chunk) add("noise sigma*C/K in each of K chunks");
  if (f.full_noise_per_chunk) add("noise sigma*C in each of K chunks");
  return out;
}

}  // namespace

AuditMethod parse_audit_method(const std::string& text) {
  if (text == "one-run") return AuditMethod::kOneRun;
  if (text == "fdp") return AuditMethod::kFdp;
  throw std::invalid_argument("--method must be one-run or fdp, got \"" + text +
                              "\"");
}

std::string to_string(AuditMethod method) {
  return method == AuditMethod::kOneRun ? "one-run" : "fdp";
}

CanaryKind parse_canary_kind(const std::string& text) {
  if (text == "dirac") return CanaryKind::kDiracGradient;
  if (text == "input") return CanaryKind::kInputSpace;
  throw std::invalid_argument("--canary-kind must be dirac or input, got \"" +
                              text + "\"");
}

std::string to_string(CanaryKind kind) {
  return kind == CanaryKind::kDiracGradient ? "dirac" : "input";
}

TrainConfig AuditRunOptions::default_audit_config() {
  TrainConfig c;
  c.dataset = "audit-canaries";
  c.model = "audit-mlp";
  c.batch_size = 0;  // half the units
  c.max_physical_batch_size = 256;
  c.steps = 50;
  c.delta = 1e-5;
  c.target_epsilon = 4.0;
  c.max_grad_norm = 1.0;
  c.lr = 0.5;
  c.optimizer = "sgd";
  c.momentum = 0.0;
  c.weight_decay = 0.0;
  return c;
}

AuditRunResult run_audit(const AuditRunOptions& options,
                         const std::function<void(const std::string&)>& log) {
  validate(options);
  const auto say = [&log](const std::string& line) {
    if (log) log(line);
  };
  const auto wall_start = std::chrono::steady_clock::now();
  TrainConfig config = options.config;
  config.task = "classify";
  if (config.batch_size == 0)
    config.batch_size = (options.real_examples + options.canaries) / 2;
  const std::int64_t m = options.canaries;
  const std::int64_t n_real = options.real_examples;
  const bool dirac = options.canary_kind == CanaryKind::kDiracGradient;
  const std::int64_t canary_columns = dirac ? (m + kHidden - 1) / kHidden : 0;
  const std::int64_t features = kRealFeatures + canary_columns;
  const double canary_scale = options.canary_norm_factor * config.max_grad_norm;

  // The coins: secret to the scoring below, which never reads them.
  std::vector<bool> included(static_cast<std::size_t>(m));
  {
    std::mt19937_64 coins(
        config.seed
            ? *config.seed ^ 0xC0A1A2135EEDULL
            : (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
                  std::random_device{}());
    for (std::size_t j = 0; j < included.size(); ++j)
      included[j] = (coins() >> 63) != 0;
  }

  // Synthetic real data and the model, from a public seed (not secret).
  const std::uint64_t public_seed = config.seed ? *config.seed : 0x5EED;
  auto gen = at::detail::createCPUGenerator(public_seed);
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  const torch::Tensor x_real =
      at::empty({n_real, kRealFeatures}, f64).normal_(0.0, 1.0, gen);
  const torch::Tensor teacher =
      at::empty({kRealFeatures, kClasses}, f64).normal_(0.0, 1.0, gen);
  const torch::Tensor y_real = x_real.matmul(teacher).argmax(1);
  auto model = std::make_shared<AuditMlpImpl>(features, kHidden, kClasses);
  model->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    model->first->weight.normal_(
        0.0, 1.0 / std::sqrt(static_cast<double>(kRealFeatures)), gen);
    model->second->weight.normal_(
        0.0, 1.0 / std::sqrt(static_cast<double>(kHidden)), gen);
    model->second->bias.zero_();
  }
  // Input-space canaries (public, from their own stream of the public seed,
  // so that the white-box run's draws are unchanged).
  torch::Tensor x_canary;
  torch::Tensor y_canary;
  if (!dirac) {
    auto canary_gen =
        at::detail::createCPUGenerator(public_seed ^ 0xCA4A41E5ULL);
    x_canary = at::empty({m, kRealFeatures}, f64).normal_(0.0, 3.0, canary_gen);
    y_canary = at::empty({m}, torch::kLong).random_(0, kClasses, canary_gen);
  }
  PrivateLoop loop(model, config);  // moves the model to config.device
  const torch::Tensor first_before = model->first->weight.detach().clone();
  const auto device = loop.device();
  loop.log = [&say](const std::string& line) { say(line); };
  const auto faults = options.faults;
  auto chunks = std::make_shared<std::int64_t>(0);
  // Skipped clipping: the engine clips at a bound no gradient here reaches,
  // while the noise stays that of the configured C. The loop noises for the
  // engine's sensitivity (its plan), so the planted noise scales z by
  // C / bound to keep σ·C.
  constexpr double kUnclippedFactor = 1e9;
  auto noise_faults = faults;
  if (faults.skip_clipping) noise_faults.noise_scale /= kUnclippedFactor;
  if (faults.any()) {
    say("WARNING: planted fault (" + describe(faults) +
        ", for audit power tests only): this run is NOT private");
  }
  if (noise_faults.noise_scale != 1.0 || noise_faults.split_noise_per_chunk ||
      noise_faults.full_noise_per_chunk) {
    // The source the loop would have chosen, wrapped.
    std::unique_ptr<dp::NoiseGenerator> inner;
    if (config.seed) {
      inner = std::make_unique<dp::SeededNoise>(*config.seed ^
                                                0x9E3779B97F4A7C15ULL);
    } else {
      inner = std::make_unique<dp::SecureNoise>();
    }
    loop.set_noise_generator(
        std::make_unique<PlantedNoise>(std::move(inner), noise_faults, chunks));
  }
  if (faults.skip_clipping) {
    loop.engine().set_options(
        dp::ClippingOptions(kUnclippedFactor * config.max_grad_norm));
  }

  PrivateTask task;
  task.dataset_size = n_real + m;
  task.privacy_unit = "one example or one canary";
  task.losses = [&](const std::vector<std::int64_t>& chunk, LoopStats& stats) {
    ++*chunks;
    const auto rows = static_cast<std::int64_t>(chunk.size());
    torch::Tensor x = torch::zeros({rows, features}, f64);
    torch::Tensor labels = torch::zeros({rows}, torch::kLong);
    torch::Tensor canary_row = torch::zeros({rows}, torch::kLong);
    torch::Tensor is_canary = torch::zeros({rows}, torch::kBool);
    auto xa = x.accessor<double, 2>();
    auto la = labels.accessor<std::int64_t, 1>();
    auto ra = canary_row.accessor<std::int64_t, 1>();
    auto ca = is_canary.accessor<bool, 1>();
    const auto xr = x_real.accessor<double, 2>();
    const auto yr = y_real.accessor<std::int64_t, 1>();
    for (std::int64_t p = 0; p < rows; ++p) {
      const std::int64_t i = chunk[static_cast<std::size_t>(p)];
      if (i < n_real) {
        for (std::int64_t f = 0; f < kRealFeatures; ++f) xa[p][f] = xr[i][f];
        la[p] = yr[i];
      } else if (dirac) {
        const std::int64_t j = i - n_real;
        // a = 1 for an included canary, 0 for an empty slot.
        xa[p][kRealFeatures + j / kHidden] =
            included[static_cast<std::size_t>(j)] ? 1.0 : 0.0;
        ra[p] = j % kHidden;
        ca[p] = true;
      } else {
        const std::int64_t j = i - n_real;
        const double* xc = x_canary.data_ptr<double>() + j * kRealFeatures;
        for (std::int64_t f = 0; f < kRealFeatures; ++f) xa[p][f] = xc[f];
        la[p] = y_canary.data_ptr<std::int64_t>()[j];
        // An excluded canary's loss is 0 below: an empty slot.
        ca[p] = !included[static_cast<std::size_t>(j)];
      }
    }
    stats.count += rows;
    x = x.to(device);
    labels = labels.to(device);
    canary_row = canary_row.to(device);
    is_canary = is_canary.to(device);
    const torch::Tensor h = model->first(x);
    const torch::Tensor logits = model->second(torch::relu(h));
    const torch::Tensor real_loss = torch::nn::functional::cross_entropy(
        logits, labels,
        torch::nn::functional::CrossEntropyFuncOptions().reduction(
            torch::kNone));
    if (!dirac) {
      // is_canary marks the empty slots here: their loss (and gradient) is 0.
      return torch::where(is_canary, torch::zeros_like(real_loss), real_loss);
    }
    const torch::Tensor canary_loss =
        canary_scale * h.gather(1, canary_row.unsqueeze(1)).squeeze(1);
    return torch::where(is_canary, canary_loss, real_loss);
  };

  const LoopResult run = loop.run(task);

  // Scores, for included and excluded canaries alike.
  std::vector<double> scores(static_cast<std::size_t>(m));
  if (!dirac) {
    // Minus each canary's loss on the final model (lower loss: "in").
    torch::NoGradGuard no_grad;
    const torch::Tensor logits =
        model->second(torch::relu(model->first(x_canary.to(device))));
    const torch::Tensor loss =
        torch::nn::functional::cross_entropy(
            logits, y_canary.to(device),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(
                torch::kNone))
            .to(torch::kCPU)
            .contiguous();
    const auto la = loss.accessor<double, 1>();
    for (std::int64_t j = 0; j < m; ++j)
      scores[static_cast<std::size_t>(j)] = -la[j];
  } else {
    const torch::Tensor moved = (first_before - model->first->weight.detach())
                                    .to(torch::kCPU)
                                    .contiguous();
    const auto ma = moved.accessor<double, 2>();
    for (std::int64_t j = 0; j < m; ++j) {
      scores[static_cast<std::size_t>(j)] =
          ma[j % kHidden][kRealFeatures + j / kHidden];
    }
  }

  audit::CanaryAuditOptions audit_options;
  audit_options.bound = options.method == AuditMethod::kOneRun
                            ? audit::AuditBound::kOneRun
                            : audit::AuditBound::kFdpApproxDp;
  audit_options.bound_options.delta = config.delta;
  audit_options.bound_options.alpha = options.alpha;
  audit_options.bound_options.tolerance = 1e-4;
  const audit::CanaryAudit found =
      audit::audit_canaries(scores, included, audit_options);

  AuditRunResult result;
  result.epsilon_claimed = run.epsilon;
  result.epsilon_lower_bound = found.epsilon;
  result.delta = config.delta;
  result.alpha = options.alpha;
  result.method = options.method;
  result.canary_kind = options.canary_kind;
  result.canaries = m;
  for (const bool in : included) result.canaries_included += in ? 1 : 0;
  result.choice = found.choice;
  result.guesses = found.outcome.guesses;
  result.correct = found.outcome.correct;
  result.choices_tried = found.choices_tried;
  result.noise_multiplier = run.noise_multiplier;
  result.sample_rate = run.sample_rate;
  result.steps = run.steps;
  result.seeded = run.seeded;
  result.faults_planted = faults.any();
  result.scores = std::move(scores);
  result.included = std::move(included);
  result.wall_seconds = std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - wall_start)
                            .count();
  return result;
}

std::string audit_result_json(const AuditRunResult& r) {
  nlohmann::ordered_json j;
  j["epsilon_claimed"] = r.epsilon_claimed;
  j["epsilon_lower_bound"] = r.epsilon_lower_bound;
  j["violation"] = r.epsilon_lower_bound > r.epsilon_claimed;
  j["canaries"] = r.canaries;
  j["canaries_included"] = r.canaries_included;
  j["alpha"] = r.alpha;
  j["confidence"] = 1.0 - r.alpha;
  j["delta"] = r.delta;
  j["method"] = to_string(r.method);
  j["canary_kind"] = to_string(r.canary_kind);
  j["k_plus"] = r.choice.k_plus;
  j["k_minus"] = r.choice.k_minus;
  j["guesses"] = r.guesses;
  j["correct"] = r.correct;
  j["choices_tried"] = r.choices_tried;
  j["noise_multiplier"] = r.noise_multiplier;
  j["sample_rate"] = r.sample_rate;
  j["steps"] = r.steps;
  j["seeded"] = r.seeded;
  j["faults_planted"] = r.faults_planted;
  j["wall_seconds"] = r.wall_seconds;
  return j.dump();
}

}  // namespace dptrain::train
