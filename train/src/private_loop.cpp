#include "dptrain/train/private_loop.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "dptrain/accountant/calibration.h"
#include "dptrain/dp/engine.h"
#include "dptrain/dp/noise.h"
#include "dptrain/dp/noise_generator.h"
#include "dptrain/dp/poisson_sampler.h"
#include "dptrain/dp/privacy_budget.h"
#include "dptrain/dp/shuffled_sampler.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/optimization.h"
#include "dptrain/train/progress.h"
#include "dptrain/train/runtime.h"

namespace dptrain::train {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Fields of the config that must not change across a resume: they define
// the privacy of the run (q, σ, C) or what is being trained.
// σ is not part of it: a resumed run keeps the σ it started with (stored in
// the checkpoint), and the budget check stops it when more steps are asked
// for than the target allows.
nlohmann::json run_identity(const TrainConfig& c, std::int64_t dataset_size,
                            const std::string& extra) {
  nlohmann::json j = {{"dataset_size", dataset_size},
                      {"batch_size", c.batch_size},
                      {"max_grad_norm", c.max_grad_norm},
                      {"normalize_clipped", c.normalize_clipped},
                      {"clipping", c.clipping},
                      {"target_epsilon", c.target_epsilon},
                      {"given_noise_multiplier", c.noise_multiplier},
                      {"sampler", c.sampler},
                      {"delta", c.delta},
                      {"augmult", c.augmult},
                      {"optimizer", c.optimizer},
                      {"ema_decay", c.ema_decay},
                      {"seeded", c.seed.has_value()}};
  if (!extra.empty()) j["task"] = nlohmann::json::parse(extra);
  return j;
}

// Throws naming the first tensor of `module` that `archive` lacks or holds
// with another shape (LibTorch's Module::load would silently take it).
void check_module_archive(const torch::nn::Module& module,
                          torch::serialize::InputArchive& archive,
                          const std::string& prefix) {
  auto check = [&](const std::string& name, const torch::Tensor& expected,
                   bool is_buffer) {
    torch::Tensor stored;
    if (!archive.try_read(name, stored, is_buffer)) {
      throw std::runtime_error("missing tensor '" + prefix + name + "'");
    }
    if (stored.sizes() != expected.sizes()) {
      std::ostringstream msg;
      msg << "tensor '" << prefix << name << "' has shape " << stored.sizes()
          << ", the model has " << expected.sizes();
      throw std::runtime_error(msg.str());
    }
  };
  for (const auto& p : module.named_parameters(/*recurse=*/false)) {
    check(p.key(), p.value(), false);
  }
  for (const auto& b : module.named_buffers(/*recurse=*/false)) {
    check(b.key(), b.value(), true);
  }
  for (const auto& child : module.named_children()) {
    torch::serialize::InputArchive child_archive;
    if (!archive.try_read(child.key(), child_archive)) {
      throw std::runtime_error("missing module '" + prefix + child.key() + "'");
    }
    check_module_archive(*child.value(), child_archive,
                         prefix + child.key() + ".");
  }
}

}  // namespace

std::string format_fixed(double v, int precision) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(precision) << v;
  return out.str();
}

struct PrivateLoop::State {
  std::shared_ptr<torch::nn::Module> model;
  TrainConfig config;
  c10::Device device{c10::kCPU};
  std::unique_ptr<dp::GradientEngine> engine;
  std::unique_ptr<Optimization> optimization;  // optimizer, schedule, EMA
  std::unique_ptr<dp::PrivacyBudget> budget;   // events so far; the stop rule
};

PrivateLoop::PrivateLoop(std::shared_ptr<torch::nn::Module> model,
                         TrainConfig config)
    : state_(std::make_unique<State>()) {
  if (!model) throw std::invalid_argument("PrivateLoop: model is null");
  config.validate();
  auto& s = *state_;
  s.model = std::move(model);
  s.config = std::move(config);
  s.device = parse_device(s.config.device);
  s.model->to(s.device);
  dp::ClippingOptions clip(s.config.max_grad_norm);
  clip.mode(s.config.clipping == "per-layer" ? dp::ClipMode::kPerLayer
                                             : dp::ClipMode::kFlat)
      .normalize(s.config.normalize_clipped)
      .diagnostics(s.config.diagnostics);
  s.engine = std::make_unique<dp::GradientEngine>(s.model, clip);
  dp::PrivacyBudgetOptions budget;
  budget.delta = s.config.delta;
  if (s.config.target_epsilon > 0)
    budget.target_epsilon = s.config.target_epsilon;
  budget.accountant = accountant::parse_accountant_kind(s.config.accountant);
  s.budget = std::make_unique<dp::PrivacyBudget>(budget);
  log = [](const std::string& line) { std::cout << line << std::endl; };
}

PrivateLoop::~PrivateLoop() = default;

c10::Device PrivateLoop::device() const { return state_->device; }
const TrainConfig& PrivateLoop::config() const { return state_->config; }
dp::GradientEngine& PrivateLoop::engine() { return *state_->engine; }
Optimization* PrivateLoop::optimization() { return state_->optimization.get(); }
double PrivateLoop::epsilon() const { return state_->budget->epsilon(); }
const accountant::EventHistory& PrivateLoop::privacy_history() const {
  return state_->budget->history();
}

LoopResult PrivateLoop::run(const PrivateTask& task) {
  auto& s = *state_;
  const auto& c = s.config;
  if (!task.losses)
    throw std::invalid_argument(
        "PrivateLoop::run: the task has no loss function");
  const auto wall_start = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         wall_start)
        .count();
  };
  const std::int64_t n = task.dataset_size;
  if (n <= 0)
    throw std::invalid_argument("--dataset: the training set is empty");
  if (c.batch_size > n) {
    throw std::invalid_argument("--batch-size " + std::to_string(c.batch_size) +
                                " is larger than the training set (" +
                                std::to_string(n) + " examples)");
  }

  // The privacy schedule: q, T, σ.
  const double q = static_cast<double>(c.batch_size) / static_cast<double>(n);
  std::int64_t total_steps = c.steps;
  if (total_steps == 0) {
    total_steps = accountant::rate_and_steps(
                      {n, c.batch_size, static_cast<double>(c.epochs)})
                      .steps;
  }
  const auto kind = accountant::parse_accountant_kind(c.accountant);
  double sigma = c.noise_multiplier;
  std::unique_ptr<torch::serialize::InputArchive> resume_archive;
  if (c.resume) {
    resume_archive = std::make_unique<torch::serialize::InputArchive>();
    load_checkpoint(c.checkpoint, *resume_archive);
    c10::IValue saved_sigma;
    if (!resume_archive->try_read("noise_multiplier", saved_sigma)) {
      throw std::runtime_error("checkpoint '" + c.checkpoint +
                               "' has no noise_multiplier");
    }
    sigma = saved_sigma.toDouble();
  } else if (c.target_epsilon > 0) {
    accountant::NoiseCalibrationOptions cal;
    cal.target_epsilon = c.target_epsilon;
    cal.delta = c.delta;
    cal.sample_rate = q;
    cal.steps = total_steps;
    cal.accountant = kind;
    sigma = accountant::calibrate_noise_multiplier(cal).noise_multiplier;
  }
  const std::int64_t steps_per_epoch =
      std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(1.0 / q)));

  // Randomness: seeded (reproducible) or secure (OS-keyed).
  const dp::ChaChaKey key =
      c.seed ? dp::key_from_seed(*c.seed) : dp::os_entropy_key();
  std::unique_ptr<dp::BatchSampler> sampler;
  if (c.sampler == "poisson") {
    sampler = std::make_unique<dp::PoissonSampler>(n, q, key);
  } else {
    sampler =
        std::make_unique<dp::ShuffledFixedSizeSampler>(n, c.batch_size, key);
  }
  std::unique_ptr<dp::NoiseGenerator> noise;
  if (c.seed) {
    noise = std::make_unique<dp::SeededNoise>(*c.seed ^ 0x9E3779B97F4A7C15ULL);
  } else {
    noise = std::make_unique<dp::SecureNoise>();
  }

  s.optimization = std::make_unique<Optimization>(s.engine->parameters(),
                                                  *s.model, c, total_steps);

  LoopResult result;
  result.sample_rate = q;
  result.noise_multiplier = sigma;
  result.delta = c.delta;
  result.privacy_note = sampler->privacy_note();
  const auto identity = run_identity(c, n, task.identity_extra);

  // Resume.
  std::int64_t step = 0;
  if (resume_archive) {
    auto& in = *resume_archive;
    c10::IValue value;
    if (!in.try_read("identity", value)) {
      throw std::runtime_error("checkpoint '" + c.checkpoint +
                               "' has no run identity");
    }
    const auto saved = nlohmann::json::parse(value.toStringRef());
    if (saved != identity) {
      throw std::invalid_argument(
          "checkpoint '" + c.checkpoint + "' belongs to another run: saved " +
          saved.dump() + ", this run " + identity.dump());
    }
    in.read("step", value);
    const auto saved_step = value.toInt();
    torch::serialize::InputArchive model_in, sampler_in, noise_in, opt_in,
        privacy_in;
    in.read("privacy", privacy_in);
    in.read("model", model_in);
    in.read("sampler", sampler_in);
    in.read("noise", noise_in);
    in.read("optimization", opt_in);
    // The model is the only live object loaded here that outlives run():
    // keep a copy so that a failure part-way leaves it as it was.
    std::vector<torch::Tensor> backup;
    {
      torch::NoGradGuard no_grad;
      for (const auto& t : s.model->parameters())
        backup.push_back(t.detach().clone());
      for (const auto& t : s.model->buffers())
        backup.push_back(t.detach().clone());
    }
    try {
      check_module_archive(*s.model, model_in, "");
      s.model->load(model_in);
      sampler->load(sampler_in);
      noise->load(noise_in);
      s.optimization->load(opt_in);
      s.budget->load(privacy_in);
      if (task.load) task.load(in);
    } catch (const std::exception& e) {
      torch::NoGradGuard no_grad;
      std::size_t i = 0;
      for (auto& t : s.model->parameters()) t.copy_(backup[i++]);
      for (auto& t : s.model->buffers()) t.copy_(backup[i++]);
      throw std::runtime_error(
          "checkpoint '" + c.checkpoint +
          "' does not match this model or run; nothing was loaded: " +
          e.what());
    }
    step = saved_step;
    log("resumed from " + c.checkpoint + " at step " + std::to_string(step) +
        " (epsilon " + format_fixed(epsilon()) + " already spent)");
  }

  auto save = [&] {
    if (c.checkpoint.empty()) return;
    torch::serialize::OutputArchive out;
    out.write("identity", c10::IValue(identity.dump()));
    out.write("config", c10::IValue(to_json(c)));
    out.write("step", c10::IValue(step));
    out.write("noise_multiplier", c10::IValue(sigma));
    if (task.save) task.save(out);
    torch::serialize::OutputArchive model_out, sampler_out, noise_out, opt_out,
        privacy_out;
    s.budget->save(privacy_out);
    out.write("privacy", privacy_out);
    s.model->save(model_out);
    sampler->save(sampler_out);
    noise->save(noise_out);
    s.optimization->save(opt_out);
    out.write("model", model_out);
    out.write("sampler", sampler_out);
    out.write("noise", noise_out);
    out.write("optimization", opt_out);
    save_checkpoint(out, c.checkpoint);
  };

  std::ostringstream plan;
  plan << "plan: " << n << " examples, q = " << format_fixed(q, 6)
       << " (expected batch " << c.batch_size << "), " << total_steps
       << " steps (" << format_fixed(static_cast<double>(total_steps) * q, 2)
       << " epochs), noise_multiplier = " << format_fixed(sigma)
       << ", max_grad_norm = " << c.max_grad_norm
       << (c.normalize_clipped ? " (normalized)" : "")
       << ", delta = " << c.delta << ", accountant = " << c.accountant
       << ", noise = " << noise->name() << ", sampler = " << sampler->name()
       << ", adjacency = add/remove " << task.privacy_unit;
  log(plan.str());
  if (!sampler->poisson()) log("WARNING: " + sampler->privacy_note());

  MetricsLog metrics(c.metrics);
  const std::int64_t k = std::max<std::int64_t>(1, task.group_size);
  const std::int64_t chunk_examples =
      std::max<std::int64_t>(1, c.max_physical_batch_size / k);
  const auto params = s.engine->parameters();
  dp::NoiseOptions noise_options;
  noise_options.noise_multiplier = sigma;
  noise_options.max_grad_norm = c.normalize_clipped ? 1.0 : c.max_grad_norm;
  noise_options.expected_batch_size = static_cast<double>(c.batch_size);

  LoopStats stats;
  std::int64_t epoch = step / steps_per_epoch;
  auto bar = std::make_unique<ProgressBar>("epoch " + std::to_string(epoch + 1),
                                           steps_per_epoch);
  s.model->train();

  while (step < total_steps) {
    // Privacy invariant 6: never take a step that would pass the target.
    if (!s.budget->allows_step({q, sigma, 1})) {
      result.stopped_by_budget = true;
      log("stopping before step " + std::to_string(step + 1) +
          ": it would take epsilon past " + "the target " +
          format_fixed(c.target_epsilon));
      break;
    }
    const auto batch = sampler->next_batch();
    for (auto& p : params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    for (const auto& chunk : dp::split_into_chunks(batch, chunk_examples)) {
      auto recording = s.engine->record();
      const auto losses = task.losses(chunk, stats);
      s.engine->clip_and_accumulate(losses, k);
    }
    dp::finalize_noisy_gradient(params, noise_options, *noise);
    s.optimization->step(*s.model, step);
    s.budget->record({q, sigma, 1});
    ++step;
    bar->update(
        step - epoch * steps_per_epoch,
        "loss " +
            format_fixed(stats.count ? stats.loss_sum / stats.count : 0.0, 3));

    const bool epoch_end = step % steps_per_epoch == 0 || step == total_steps;
    if (c.checkpoint_every > 0 && step % c.checkpoint_every == 0) save();
    if (epoch_end) {
      bar->finish();
      EpochContext context;
      context.epoch = ++epoch;
      context.step = step;
      context.stats = stats;
      context.epsilon = epsilon();
      context.seconds = elapsed();
      if (task.end_epoch) {
        const auto out = task.end_epoch(context);
        if (!out.line.empty()) log(out.line);
        if (!out.metrics_json.empty()) metrics.write(out.metrics_json);
      }
      if (c.checkpoint_every == 0) save();
      stats = LoopStats();
      if (step < total_steps) {
        bar = std::make_unique<ProgressBar>(
            "epoch " + std::to_string(epoch + 1), steps_per_epoch);
      }
    }
  }
  bar->finish();
  if (!c.checkpoint.empty()) save();

  result.steps = step;
  accountant::RdpAccountant rdp;
  rdp.set_history(s.budget->history());
  result.epsilon_rdp = rdp.get_epsilon(c.delta).epsilon;
  result.epsilon_prv_upper = kNaN;
  try {
    accountant::PrvAccountant prv;
    prv.set_history(s.budget->history());
    result.epsilon_prv_upper = prv.get_epsilon(c.delta).upper;
  } catch (const std::invalid_argument&) {
    // PRV's grid can be too large for extreme regimes; RDP still holds.
  }
  result.epsilon = kind == accountant::AccountantKind::kRdp
                       ? result.epsilon_rdp
                       : result.epsilon_prv_upper;
  result.wall_seconds = elapsed();
  return result;
}

}  // namespace dptrain::train
