#include "dptrain/bench/step_benchmark.h"

#include <sys/resource.h>
#include <unistd.h>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include "dptrain/dp/clipping/clipping.h"
#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/dp/clipping/parameter_groups.h"
#include "dptrain/dp/clipping/rule_registry.h"
#include "dptrain/dp/clipping/rules.h"
#include "dptrain/dp/layers/autocast.h"
#include "dptrain/dp/layers/recording.h"
#include "dptrain/dp/mechanism/noise.h"
#include "dptrain/dp/mechanism/noise_generator.h"
#include "dptrain/dp/optim/optimizer.h"
#include "dptrain/models/diffusion.h"
#include "dptrain/models/fine_tuning.h"
#include "dptrain/models/griffin.h"
#include "dptrain/models/registry.h"
#include "dptrain/models/sequence_mlp.h"
#include "dptrain/models/unet.h"

namespace dptrain::bench {
namespace {

// Both variants update the model with the same optimizer settings; a small
// learning rate keeps random-label training far from overflow (NaN or
// denormal arithmetic would distort the timings).
dp::OptimizerOptions benchmark_optimizer() {
  dp::OptimizerOptions o;
  o.kind = dp::OptimizerKind::kSgd;
  o.lr = 0.01;
  o.momentum = 0.9;
  return o;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

void synchronize(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

}  // namespace

std::string to_string(StepVariant variant) {
  switch (variant) {
    case StepVariant::kNonPrivate:
      return "nonprivate";
    case StepVariant::kDp:
      return "dp";
    case StepVariant::kOracle:
      return "oracle";
  }
  return "unknown";
}

StepVariant parse_step_variant(const std::string& name) {
  if (name == "nonprivate") return StepVariant::kNonPrivate;
  if (name == "dp") return StepVariant::kDp;
  if (name == "oracle") return StepVariant::kOracle;
  throw std::invalid_argument(
      "step variant must be nonprivate, dp or oracle, got '" + name + "'");
}

void validate(const StepBenchmarkOptions& o) {
  auto at_least = [](const char* name, int64_t value, int64_t low) {
    if (value < low) {
      throw std::invalid_argument(std::string(name) +
                                  " must be >= " + std::to_string(low) +
                                  ", got " + std::to_string(value));
    }
  };
  at_least("batch_size", o.batch_size, 1);
  at_least("seq_len", o.seq_len, 1);
  at_least("steps", o.steps, 1);
  at_least("warmup_steps", o.warmup_steps, 0);
  at_least("logical_batch_size", o.logical_batch_size, 0);
  at_least("lora_rank", o.lora_rank, 0);
  at_least("max_kept_mb", o.max_kept_mb, -1);
  if (o.logical_batch_size % o.batch_size != 0) {
    throw std::invalid_argument(
        "logical_batch_size must be a multiple of batch_size (" +
        std::to_string(o.batch_size) + "), got " +
        std::to_string(o.logical_batch_size));
  }
  if (o.variants.empty()) {
    throw std::invalid_argument("variants must name at least one step variant");
  }
  for (size_t i = 0; i < o.variants.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (o.variants[i] == o.variants[j]) {
        throw std::invalid_argument("variants lists '" +
                                    to_string(o.variants[i]) + "' twice");
      }
    }
  }
  if (!(o.noise_multiplier >= 0) || !std::isfinite(o.noise_multiplier)) {
    throw std::invalid_argument(
        "noise_multiplier must be finite and >= 0, got " +
        std::to_string(o.noise_multiplier));
  }
  if (!(o.max_grad_norm > 0) || !std::isfinite(o.max_grad_norm)) {
    throw std::invalid_argument("max_grad_norm must be finite and > 0, got " +
                                std::to_string(o.max_grad_norm));
  }
}

struct StepRunner::State {
  StepBenchmarkOptions options;
  std::shared_ptr<torch::nn::Module> model;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  // [rows] per-example losses of the model's output for targets.
  std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>
      per_example_loss;
  torch::Tensor inputs;
  torch::Tensor targets;
  std::unique_ptr<dp::GradientEngine> engine;
  std::vector<torch::Tensor> params;
  std::unique_ptr<dp::DpOptimizer> nonprivate_optimizer;
  std::unique_ptr<dp::DpOptimizer> dp_optimizer;
  std::unique_ptr<dp::DpOptimizer> oracle_optimizer;
  std::unique_ptr<dp::NoiseGenerator> noise;
  dp::NoiseOptions noise_options;
  std::map<const torch::nn::Module*, std::string> path_of;
  // The last DP step's routes (RouteObserver).
  std::vector<std::pair<std::string, std::string>> routes;

  void drop_grads() {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }
};

StepRunner::StepRunner(const StepBenchmarkOptions& options)
    : state_(std::make_unique<State>()) {
  validate(options);
  auto& s = *state_;
  s.options = options;
  torch::manual_seed(options.seed);
  const int64_t b = options.batch_size;
  auto cross_entropy = [](const torch::Tensor& logits,
                          const torch::Tensor& labels) {
    return torch::nn::functional::cross_entropy(
        logits, labels,
        torch::nn::functional::CrossEntropyFuncOptions().reduction(
            torch::kNone));
  };
  // Sequence models: per-example loss = mean next-token cross-entropy.
  auto sequence_loss = [cross_entropy](const torch::Tensor& logits,
                                       const torch::Tensor& labels) {
    const int64_t rows = logits.size(0);
    return cross_entropy(logits.reshape({-1, logits.size(-1)}),
                         labels.reshape({-1}))
        .view({rows, -1})
        .mean(1);
  };
  // Token models: random tokens of the model's vocabulary.
  auto use_token_model = [&](auto model, int64_t vocab) {
    s.model = model.ptr();
    s.forward = [model](const torch::Tensor& x) mutable {
      return model->forward(x);
    };
    s.per_example_loss = sequence_loss;
    s.inputs = torch::randint(vocab, {b, options.seq_len}, torch::kLong);
    s.targets = torch::randint(vocab, {b, options.seq_len}, torch::kLong);
  };
  const auto griffin_names = models::griffin_config_names();
  const auto diffusion_names = models::list_diffusion_models();
  if (std::find(diffusion_names.begin(), diffusion_names.end(),
                options.model) != diffusion_names.end()) {
    // A diffusion UNet under the EDM loss, one row per example (K = 1): each
    // input row packs its clean image, its noise, its σ and its label as
    // channels [x | n | σ | label], so any slice of rows (the oracle's one
    // row) carries its own draws. The forward gives the per-row losses.
    const auto cfg = models::unet_config(options.model);
    models::UNet net(cfg);
    const int64_t c = cfg.in_channels, hw = cfg.image_size;
    s.model = net.ptr();
    s.forward = [net, c](const torch::Tensor& in) mutable {
      const auto x = in.narrow(1, 0, c);
      const auto noise = in.narrow(1, c, c);
      const auto sigma = in.select(1, 2 * c).select(1, 0).select(1, 0);
      const auto labels =
          in.select(1, 2 * c + 1).select(1, 0).select(1, 0).to(torch::kLong);
      const models::EdmOptions edm;
      const models::Denoiser denoiser = [&](const torch::Tensor& xn,
                                            const torch::Tensor& sg) {
        return models::edm_denoise(net, xn, sg, labels, edm);
      };
      return models::edm_loss(denoiser, x, sigma, noise, edm);
    };
    s.per_example_loss = [](const torch::Tensor& losses, const torch::Tensor&) {
      return losses;
    };
    const auto sigma = (torch::randn({b}) * 1.2 - 1.2).exp();
    const auto labels = torch::randint(cfg.num_classes, {b}).to(torch::kFloat);
    s.inputs = torch::cat(
        {torch::rand({b, c, hw, hw}) * 2 - 1, torch::randn({b, c, hw, hw}),
         sigma.view({b, 1, 1, 1}).expand({b, 1, hw, hw}),
         labels.view({b, 1, 1, 1}).expand({b, 1, hw, hw})},
        1);
    s.targets = torch::zeros({b});
  } else if (options.model == "seq") {
    auto model = models::SequenceMlp(models::SequenceMlpOptions());
    use_token_model(model, model->options.vocab_size());
  } else if (std::find(griffin_names.begin(), griffin_names.end(),
                       options.model) != griffin_names.end()) {
    // Griffin / Hawk (griffin-tiny, hawk-tiny, griffin-25m, ...).
    auto model = models::Griffin(models::griffin_config(options.model));
    if (options.lora_rank > 0) {
      models::add_lora(*model, {options.lora_rank, 0.0, "blocks\\."});
    }
    use_token_model(model, model->config().vocab_size);
  } else {
    const auto info = models::model_info(options.model);
    auto model = models::make_model(options.model);
    s.model = model;
    s.forward = [model](const torch::Tensor& x) { return model->forward(x); };
    s.per_example_loss = cross_entropy;
    s.inputs =
        torch::randn({b, info.in_channels, info.image_size, info.image_size});
    s.targets = torch::randint(info.num_classes, {b}, torch::kLong);
  }
  if (options.lora_rank > 0 &&
      std::find(griffin_names.begin(), griffin_names.end(), options.model) ==
          griffin_names.end()) {
    throw std::invalid_argument("lora_rank is for Griffin / Hawk models, got " +
                                options.model);
  }
  if (options.mixed_precision != dp::MixedPrecision::kNone) {
    // As the training loop: only the forward autocasts, and what it returns
    // (logits, or the diffusion rows' losses) is upcast before the loss.
    s.forward = [inner = std::move(s.forward), device = options.device,
                 precision = options.mixed_precision](const torch::Tensor& x) {
      torch::Tensor y;
      {
        dp::AutocastGuard autocast(device.type(), precision);
        y = inner(x);
      }
      return dp::promote_to(y, torch::kFloat);
    };
  }
  s.model->to(options.device);
  s.model->train();
  s.inputs = s.inputs.to(options.device);
  s.targets = s.targets.to(options.device);

  s.engine = std::make_unique<dp::GradientEngine>(
      s.model, dp::ClippingOptions(options.max_grad_norm));
  s.engine->set_route_policy(
      dp::load_route_policy(options.routes, options.route_cache));
  if (options.max_kept_mb >= 0) {
    s.engine->set_max_kept_bytes(options.max_kept_mb << 20);
  }
  s.engine->set_backward_passes(options.backward_passes);
  for (const auto& item : s.model->named_modules("", true)) {
    s.path_of[item.value().get()] = item.key();
  }
  s.params = s.engine->parameters();
  s.nonprivate_optimizer =
      std::make_unique<dp::DpOptimizer>(s.params, benchmark_optimizer());
  s.dp_optimizer =
      std::make_unique<dp::DpOptimizer>(s.params, benchmark_optimizer());
  s.oracle_optimizer =
      std::make_unique<dp::DpOptimizer>(s.params, benchmark_optimizer());
  if (options.secure_noise) {
    s.noise = std::make_unique<dp::SecureNoise>();
  } else {
    s.noise = std::make_unique<dp::SeededNoise>(options.seed + 1);
  }
  s.noise_options.noise_multiplier = options.noise_multiplier;
  s.noise_options.max_grad_norm = options.max_grad_norm;
  s.noise_options.expected_batch_size = static_cast<double>(b);
  dp::validate(s.noise_options);
}

StepRunner::~StepRunner() = default;

std::vector<at::Tensor> StepRunner::parameters() const {
  return state_->params;
}

int64_t StepRunner::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : state_->params) n += p.numel();
  return n;
}

void StepRunner::nonprivate_backward() {
  auto& s = *state_;
  s.drop_grads();
  auto loss = s.per_example_loss(s.forward(s.inputs), s.targets).mean();
  loss.backward();
}

namespace {

// Sets an observer on the engine for the scope's lifetime (also when the
// step throws).
class ObserverScope {
 public:
  ObserverScope(dp::GradientEngine& engine, dp::EngineObserver* observer)
      : engine_(engine) {
    engine_.set_observer(observer);
  }
  ~ObserverScope() { engine_.set_observer(nullptr); }
  ObserverScope(const ObserverScope&) = delete;
  ObserverScope& operator=(const ObserverScope&) = delete;

 private:
  dp::GradientEngine& engine_;
};

// Collects the route of each layer call that has one, as the engine set it.
class RouteObserver final : public dp::EngineObserver {
 public:
  RouteObserver(const std::map<const torch::nn::Module*, std::string>& paths,
                std::vector<std::pair<std::string, std::string>>& routes)
      : paths_(paths), routes_(routes) {
    routes_.clear();
  }
  void layer_end(dp::EnginePhase phase, const dp::LayerCall& call,
                 bool /*kept*/) override {
    if (phase != dp::EnginePhase::kNorms || call.route.empty()) return;
    const auto it = paths_.find(call.layer);
    routes_.emplace_back(it == paths_.end() ? std::string("?") : it->second,
                         call.route);
  }

 private:
  const std::map<const torch::nn::Module*, std::string>& paths_;
  std::vector<std::pair<std::string, std::string>>& routes_;
};

}  // namespace

void StepRunner::dp_clip() {
  auto& s = *state_;
  s.drop_grads();
  auto recording = s.engine->record();
  auto losses = s.per_example_loss(s.forward(s.inputs), s.targets);
  RouteObserver observer(s.path_of, s.routes);
  ObserverScope observing(*s.engine, &observer);
  s.engine->clip_and_accumulate(losses);
}

std::vector<std::pair<std::string, std::string>> StepRunner::last_routes()
    const {
  return state_->routes;
}

void StepRunner::oracle_clip() {
  auto& s = *state_;
  s.drop_grads();
  dp::microbatch_clip_and_accumulate(
      *s.model, s.options.batch_size,
      [&s](int64_t i) {
        return s.per_example_loss(s.forward(s.inputs.narrow(0, i, 1)),
                                  s.targets.narrow(0, i, 1));
      },
      s.engine->options());
}

StepRunner::Times StepRunner::run(StepVariant variant) {
  auto& s = *state_;
  const auto device = s.options.device;
  const auto start = std::chrono::steady_clock::now();
  switch (variant) {
    case StepVariant::kNonPrivate:
      nonprivate_backward();
      break;
    case StepVariant::kDp:
      dp_clip();
      break;
    case StepVariant::kOracle:
      oracle_clip();
      break;
  }
  synchronize(device);
  const auto middle = std::chrono::steady_clock::now();
  switch (variant) {
    case StepVariant::kNonPrivate:
      s.nonprivate_optimizer->step();
      break;
    case StepVariant::kDp:
      dp::finalize_noisy_gradient(s.params, s.noise_options, *s.noise);
      s.dp_optimizer->step();
      break;
    case StepVariant::kOracle:
      dp::finalize_noisy_gradient(s.params, s.noise_options, *s.noise);
      s.oracle_optimizer->step();
      break;
  }
  synchronize(device);
  const auto stop = std::chrono::steady_clock::now();
  using ms = std::chrono::duration<double, std::milli>;
  return {ms(middle - start).count(), ms(stop - middle).count()};
}

namespace {

// Times the engine's phases and, per layer call, its rule's squared norms
// and weighted sums, into a StepProfile.
class ProfileObserver final : public dp::EngineObserver {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  ProfileObserver(StepProfile& profile,
                  const std::map<const torch::nn::Module*, std::string>& paths,
                  Clock clock)
      : profile_(profile), paths_(paths), clock_(std::move(clock)) {}

  void phase_begin(dp::EnginePhase) override {
    phase_start_ = clock_();
    nested_norms_ms_ = 0.0;
  }
  // The backward takes most layers' norms as their gradients arrive: they
  // are reported as their own phase, and the backward without them.
  void phase_end(dp::EnginePhase phase) override {
    const double total = since(phase_start_);
    if (phase == dp::EnginePhase::kBackward) {
      profile_.phases.push_back(
          {"dp", dp::to_string(phase), total - nested_norms_ms_});
      profile_.phases.push_back(
          {"dp", "norms (rules), during the backward", nested_norms_ms_});
      return;
    }
    profile_.phases.push_back({"dp", dp::to_string(phase), total});
  }
  void layer_begin(dp::EnginePhase, const dp::LayerCall&) override {
    layer_start_ = clock_();
  }
  void layer_end(dp::EnginePhase phase, const dp::LayerCall& call,
                 bool kept) override {
    const double ms = since(layer_start_);
    if (phase == dp::EnginePhase::kNorms) {
      nested_norms_ms_ += ms;
      StepProfile::Layer layer;
      const auto it = paths_.find(call.layer);
      layer.path = it == paths_.end() ? std::string("?") : it->second;
      layer.type = call.layer->name();
      layer.input_shape = c10::str(call.input.sizes());
      layer.output_shape = call.grad_output.defined()
                               ? c10::str(call.grad_output.sizes())
                               : std::string("-");
      layer.norms_ms = ms;
      layer.kept = kept;
      layer.route = call.route;
      index_[&call] = profile_.layers.size();
      profile_.layers.push_back(std::move(layer));
    } else if (const auto it = index_.find(&call); it != index_.end()) {
      profile_.layers[it->second].sums_ms = ms;
    }
  }

 private:
  double since(std::chrono::steady_clock::time_point start) const {
    return std::chrono::duration<double, std::milli>(clock_() - start).count();
  }
  StepProfile& profile_;
  const std::map<const torch::nn::Module*, std::string>& paths_;
  Clock clock_;
  std::chrono::steady_clock::time_point phase_start_, layer_start_;
  double nested_norms_ms_ = 0.0;  // layer norms inside the current phase
  std::map<const dp::LayerCall*, std::size_t> index_;
};

}  // namespace

void StepRunner::profile_once(StepProfile& profile) {
  auto& s = *state_;
  const auto device = s.options.device;
  auto clock = [&device] {
    synchronize(device);
    return std::chrono::steady_clock::now();
  };
  auto ms = [](auto start, auto stop) {
    return std::chrono::duration<double, std::milli>(stop - start).count();
  };
  auto phase = [&profile](const char* variant, const char* name, double t) {
    profile.phases.push_back({variant, name, t});
  };

  // Non-private.
  s.drop_grads();
  auto t0 = clock();
  auto loss = s.per_example_loss(s.forward(s.inputs), s.targets).mean();
  auto t1 = clock();
  loss.backward();
  auto t2 = clock();
  s.nonprivate_optimizer->step();
  auto t3 = clock();
  phase("nonprivate", "forward", ms(t0, t1));
  phase("nonprivate", "backward", ms(t1, t2));
  phase("nonprivate", "optimizer", ms(t2, t3));

  // DP: the engine's own step, its phases and layer rules timed by an
  // observer (the device synchronised around each).
  s.drop_grads();
  ProfileObserver observer(profile, s.path_of, clock);
  t0 = clock();
  {
    auto recording = s.engine->record();
    const auto losses = s.per_example_loss(s.forward(s.inputs), s.targets);
    t1 = clock();
    phase("dp", "forward (recorded)", ms(t0, t1));
    ObserverScope observing(*s.engine, &observer);
    s.engine->clip_and_accumulate(losses);
  }
  t2 = clock();
  dp::finalize_noisy_gradient(s.params, s.noise_options, *s.noise);
  const auto noise_stop = clock();
  s.dp_optimizer->step();
  const auto step_stop = clock();
  phase("dp", "noise", ms(t2, noise_stop));
  phase("dp", "optimizer", ms(noise_stop, step_stop));
}

int64_t current_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

int64_t peak_rss_bytes() {
  struct rusage usage {};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux: kilobytes
}

StepBenchmarkResult benchmark_step(const StepBenchmarkOptions& options) {
  StepRunner runner(options);
  StepBenchmarkResult result;
  result.model = options.model;
  result.batch_size = options.batch_size;
  result.steps = options.steps;
  result.parameters = runner.num_parameters();
  result.threads = at::get_num_threads();
  result.device = options.device.str();
  result.baseline_rss_bytes = current_rss_bytes();

  for (int64_t i = 0; i < options.warmup_steps; ++i) {
    for (auto v : options.variants) runner.run(v);
  }
  synchronize(options.device);
  // Per variant: whole steps, gradient parts, update parts.
  std::map<StepVariant, std::vector<double>> times, gradient, update;
  for (int64_t i = 0; i < options.steps; ++i) {
    for (auto v : options.variants) {
      const auto t = runner.run(v);
      times[v].push_back(t.gradient_ms + t.update_ms);
      gradient[v].push_back(t.gradient_ms);
      update[v].push_back(t.update_ms);
    }
  }
  auto median_of = [](const std::map<StepVariant, std::vector<double>>& m,
                      StepVariant v) -> std::optional<double> {
    auto it = m.find(v);
    if (it == m.end()) return std::nullopt;
    return median(it->second);
  };
  using V = StepVariant;
  result.nonprivate_ms = median_of(times, V::kNonPrivate);
  result.dp_ms = median_of(times, V::kDp);
  result.oracle_ms = median_of(times, V::kOracle);
  result.nonprivate_gradient_ms = median_of(gradient, V::kNonPrivate);
  result.nonprivate_update_ms = median_of(update, V::kNonPrivate);
  result.dp_gradient_ms = median_of(gradient, V::kDp);
  result.dp_update_ms = median_of(update, V::kDp);
  if (result.nonprivate_gradient_ms && result.dp_gradient_ms) {
    result.gradient_ratio =
        *result.dp_gradient_ms / *result.nonprivate_gradient_ms;
    if (options.logical_batch_size > 0) {
      const double k = static_cast<double>(options.logical_batch_size) /
                       static_cast<double>(options.batch_size);
      result.logical_ratio =
          (k * *result.dp_gradient_ms + *result.dp_update_ms) /
          (k * *result.nonprivate_gradient_ms + *result.nonprivate_update_ms);
    }
  }
  if (result.nonprivate_ms && result.dp_ms) {
    result.ratio = *result.dp_ms / *result.nonprivate_ms;
  }
  if (result.nonprivate_ms && result.oracle_ms) {
    result.oracle_ratio = *result.oracle_ms / *result.nonprivate_ms;
  }
  result.peak_rss_bytes = peak_rss_bytes();
  result.routes = runner.last_routes();
  return result;
}

StepProfile profile_step(const StepBenchmarkOptions& options) {
  StepRunner runner(options);
  for (int64_t i = 0; i < options.warmup_steps; ++i) {
    StepProfile ignored;
    runner.profile_once(ignored);
  }
  std::vector<StepProfile> runs(static_cast<size_t>(options.steps));
  for (auto& run : runs) runner.profile_once(run);
  // Medians entry by entry (every run has the same entries in order).
  StepProfile out = runs.front();
  std::vector<double> values(runs.size());
  for (size_t k = 0; k < out.phases.size(); ++k) {
    for (size_t r = 0; r < runs.size(); ++r) values[r] = runs[r].phases[k].ms;
    out.phases[k].ms = median(values);
  }
  for (size_t k = 0; k < out.layers.size(); ++k) {
    for (size_t r = 0; r < runs.size(); ++r) {
      values[r] = runs[r].layers[k].norms_ms;
    }
    out.layers[k].norms_ms = median(values);
    for (size_t r = 0; r < runs.size(); ++r) {
      values[r] = runs[r].layers[k].sums_ms;
    }
    out.layers[k].sums_ms = median(values);
  }
  return out;
}

}  // namespace dptrain::bench
