#include "dptrain/train/private_loop.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "dptrain/accountant/calibration.h"
#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/mechanism/noise.h"
#include "dptrain/dp/mechanism/noise_generator.h"
#include "dptrain/dp/mechanism/poisson_sampler.h"
#include "dptrain/dp/mechanism/privacy_budget.h"
#include "dptrain/dp/mechanism/shuffled_sampler.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/dp_plan.h"
#include "dptrain/train/ledger.h"
#include "dptrain/train/optimization.h"
#include "dptrain/train/outputs.h"
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
                            const std::string& extra,
                            const std::string& fingerprint) {
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
  if (!fingerprint.empty()) j["data"] = nlohmann::json::parse(fingerprint);
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

// One log line of the epoch's clipping statistics. NOT PRIVATE: computed from
// the un-noised per-example norms of private data.
std::string diagnostics_line(std::int64_t epoch, std::vector<double> norms,
                             double clipped) {
  std::ostringstream line;
  line << "diagnostics (NON-PRIVATE: un-noised, from private data; do not "
          "publish): epoch "
       << epoch << ": ";
  if (norms.empty()) {
    line << "no examples sampled";
    return line.str();
  }
  std::sort(norms.begin(), norms.end());
  const auto quantile = [&](double p) {
    const double at = p * static_cast<double>(norms.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(at));
    const auto hi = std::min(norms.size() - 1, lo + 1);
    return norms[lo] + (at - static_cast<double>(lo)) * (norms[hi] - norms[lo]);
  };
  line << format_fixed(100.0 * clipped / static_cast<double>(norms.size()), 1)
       << "% of examples clipped; per-example gradient norm quantiles "
          "0/25/50/75/100%: ";
  for (double p : {0.0, 0.25, 0.5, 0.75, 1.0}) {
    line << (p > 0 ? " / " : "") << format_fixed(quantile(p), 4);
  }
  return line.str();
}

}  // namespace

std::string privacy_summary_json(const LoopResult& r, const TrainConfig& c) {
  const auto number = [](double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  };
  nlohmann::json j = {
      {"epsilon", number(r.epsilon)},
      {"epsilon_rdp", number(r.epsilon_rdp)},
      {"epsilon_prv_upper", number(r.epsilon_prv_upper)},
      {"delta", r.delta},
      {"noise_multiplier", r.noise_multiplier},
      {"sample_rate", r.sample_rate},
      {"steps", r.steps},
      {"steps_accounted", r.steps_accounted},
      {"accountant", c.accountant},
      {"sampler", c.sampler},
      {"stopped_by_budget", r.stopped_by_budget},
      {"seeded", r.seeded},
      {"publish",
       std::string(r.seeded ? std::string(kSeededNotice) + ". " : "") +
           "Safe to publish (post-processing of the noisy steps): the weights "
           "files, the EMA "
           "weights and this summary's privacy figures. Private training "
           "state, never to "
           "publish: the checkpoint, its ledger and the non-private figures "
           "(training loss, "
           "validation split, diagnostics)."},
  };
  if (!r.privacy_note.empty()) j["privacy_note"] = r.privacy_note;
  if (r.plan.dataset_size > 0)
    j["plan"] = nlohmann::json::parse(r.plan.to_json());
  return j.dump();
}

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
  std::unique_ptr<dp::NoiseGenerator> injected_noise;  // set_noise_generator
};

void PrivateLoop::set_noise_generator(
    std::unique_ptr<dp::NoiseGenerator> generator) {
  state_->injected_noise = std::move(generator);
}

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
  check_dataset_size(c, n);
  const auto identity =
      run_identity(c, n, task.identity_extra, task.data_fingerprint);
  // Every output is checked before anything is spent.
  check_outputs(c);

  // Ownership of the checkpoint and its privacy record (invariant 7): one
  // run at a time; a fresh run never replaces a record unless told to.
  std::unique_ptr<CheckpointLock> lock;
  std::optional<PrivacyLedger> ledger;
  std::string run_id = new_run_id();
  if (!c.checkpoint.empty()) {
    lock = std::make_unique<CheckpointLock>(c.checkpoint);
    const int stale = remove_stale_temporaries(c.checkpoint) +
                      remove_stale_temporaries(ledger_path(c.checkpoint));
    if (stale > 0) {
      log("removed " + std::to_string(stale) +
          " temporary file(s) of crashed runs beside " + c.checkpoint);
    }
    const std::string record = ledger_path(c.checkpoint);
    const bool has_checkpoint = std::filesystem::exists(c.checkpoint);
    const bool has_ledger = std::filesystem::exists(record);
    if (!c.resume && (has_checkpoint || has_ledger)) {
      std::string what = "checkpoint '" + c.checkpoint + "'";
      if (has_ledger) {
        std::string steps = "an unreadable record";
        try {
          steps = std::to_string(
                      accountant::total_steps(read_ledger_history(record))) +
                  " accounted steps";
        } catch (const std::exception&) {
        }
        what += (has_checkpoint ? " and its privacy ledger '"
                                : ", privacy ledger '") +
                record + "' (" + steps + ")";
      }
      if (!c.overwrite) {
        throw std::invalid_argument(
            "--checkpoint: " + what +
            (has_checkpoint && has_ledger ? " already exist"
                                          : " already exists") +
            "; give --resume to continue that run, or --overwrite to "
            "discard its record and start afresh");
      }
      log("--overwrite: discarding " + what +
          "; the steps it spent are no longer on record");
    }
    if (c.resume && !has_ledger) {
      throw std::runtime_error("--resume: checkpoint '" + c.checkpoint +
                               "' has no privacy ledger '" + record +
                               "' beside it, so the steps it spent cannot be "
                               "verified (copy the ledger with the "
                               "checkpoint)");
    }
    if (c.resume) ledger = PrivacyLedger::open(record);
  }

  std::optional<double> resumed_sigma;
  std::unique_ptr<torch::serialize::InputArchive> resume_archive;
  if (c.resume) {
    resume_archive = std::make_unique<torch::serialize::InputArchive>();
    load_checkpoint(c.checkpoint, *resume_archive);
    c10::IValue saved_sigma;
    if (!resume_archive->try_read("noise_multiplier", saved_sigma)) {
      throw std::runtime_error("checkpoint '" + c.checkpoint +
                               "' has no noise_multiplier");
    }
    resumed_sigma = saved_sigma.toDouble();
  }
  // The privacy of the run, once (q, T, σ, the engine's sensitivity, ...):
  // everything below reads it.
  const DpPlan plan = make_dp_plan(c, n, s.engine->options().sensitivity(),
                                   task.privacy_unit, resumed_sigma);
  const double q = plan.sample_rate;
  const double sigma = plan.noise_multiplier;
  const std::int64_t total_steps = plan.steps;
  const std::int64_t steps_per_epoch = plan.steps_per_epoch;

  // Randomness: seeded (reproducible, key kept in checkpoints) or secure
  // (OS-keyed; no key is ever written, privacy invariant 8).
  const dp::ChaChaKey key =
      c.seed ? dp::key_from_seed(*c.seed) : dp::os_entropy_key();
  const auto key_policy =
      c.seed ? dp::SamplerKey::kReproducible : dp::SamplerKey::kSecret;
  std::unique_ptr<dp::BatchSampler> sampler;
  if (c.sampler == "poisson") {
    sampler = std::make_unique<dp::PoissonSampler>(n, q, key, key_policy);
  } else {
    sampler = std::make_unique<dp::ShuffledFixedSizeSampler>(
        n, plan.expected_batch_size, key, key_policy);
  }
  std::unique_ptr<dp::NoiseGenerator> noise;
  if (s.injected_noise) {
    noise = std::move(s.injected_noise);
  } else if (c.seed) {
    noise = std::make_unique<dp::SeededNoise>(*c.seed ^ 0x9E3779B97F4A7C15ULL);
  } else {
    noise = std::make_unique<dp::SecureNoise>();
  }

  s.optimization = std::make_unique<Optimization>(s.engine->parameters(),
                                                  *s.model, c, total_steps);

  LoopResult result;
  result.plan = plan;
  result.sample_rate = q;
  result.noise_multiplier = sigma;
  result.delta = plan.delta;
  result.privacy_note = sampler->privacy_note();
  result.seeded = c.seed.has_value();

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
    if (!in.try_read("run_id", value) ||
        value.toStringRef() != ledger->run_id()) {
      throw std::runtime_error("checkpoint '" + c.checkpoint +
                               "' and privacy ledger '" + ledger->path() +
                               "' belong to different runs");
    }
    run_id = ledger->run_id();
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
      // Checks the accountant and δ; the ledger then replaces the history:
      // it holds every executed step, the checkpoint only those before it.
      s.budget->load(privacy_in);
      if (ledger->steps() < s.budget->steps()) {
        throw std::runtime_error("its privacy ledger records " +
                                 std::to_string(ledger->steps()) +
                                 " steps, fewer than the checkpoint's " +
                                 std::to_string(s.budget->steps()));
      }
      s.budget = std::make_unique<dp::PrivacyBudget>(s.budget->options(),
                                                     ledger->history());
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
        " (" + std::to_string(s.budget->steps()) +
        " steps accounted by the ledger, " +
        std::to_string(s.budget->steps() - step) +
        " of them lost in an interruption; epsilon " + format_fixed(epsilon()) +
        " already spent)");
  }

  auto save = [&] {
    if (c.checkpoint.empty()) return;
    torch::serialize::OutputArchive out;
    out.write("identity", c10::IValue(identity.dump()));
    out.write("config", c10::IValue(to_json(c)));
    out.write("run_id", c10::IValue(run_id));
    // Private training state, never a release artefact (weights files are).
    out.write(
        "release",
        c10::IValue(c.seed ? std::string(kSeededNotice) +
                                 "; private training state, do not publish"
                           : std::string("private training state, do not "
                                         "publish: release the weights file")));
    out.write("step", c10::IValue(step));
    out.write("steps_accounted", c10::IValue(s.budget->steps()));
    out.write("noise_multiplier", c10::IValue(sigma));
    out.write("plan", c10::IValue(plan.to_json()));
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

  log(plan.describe(noise->name(), sampler->name()));
  if (!sampler->poisson()) log("WARNING: " + sampler->privacy_note());
  if (c.seed) {
    log(std::string("WARNING: ") + kSeededNotice +
        " (the seed determines the batches and the noise)");
  }
  if (!c.checkpoint.empty() && !c.resume) {
    // The record first, then a checkpoint at step 0: from the first step on
    // there is always a checkpoint to resume from and a ledger that counts.
    ledger = PrivacyLedger::create(ledger_path(c.checkpoint), run_id,
                                   identity.dump());
    save();
  }

  MetricsLog metrics(c.metrics);
  const std::int64_t k = std::max<std::int64_t>(1, task.group_size);
  const std::int64_t chunk_examples =
      std::max<std::int64_t>(1, c.max_physical_batch_size / k);
  const auto params = s.engine->parameters();
  dp::NoiseOptions noise_options;
  noise_options.noise_multiplier = plan.noise_multiplier;
  noise_options.max_grad_norm = plan.sensitivity;
  noise_options.expected_batch_size =
      static_cast<double>(plan.expected_batch_size);

  LoopStats stats;
  // --diagnostics: the epoch's un-noised per-example norms. NOT PRIVATE.
  std::vector<double> epoch_norms;
  double epoch_clipped = 0.0;
  std::int64_t epoch = step / steps_per_epoch;
  auto bar = std::make_unique<ProgressBar>("epoch " + std::to_string(epoch + 1),
                                           steps_per_epoch);
  s.model->train();

  while (step < total_steps) {
    // Privacy invariant 6: never take a step that would pass the target.
    if (!s.budget->allows_step(plan.step_event())) {
      result.stopped_by_budget = true;
      log("stopping before step " + std::to_string(step + 1) +
          ": it would take epsilon past " + "the target " +
          format_fixed(c.target_epsilon));
      break;
    }
    // Write-ahead (invariant 7): the step is on the ledger, on disk, before
    // anything it computes exists.
    if (ledger) ledger->append(q, sigma);
    s.budget->record(plan.step_event());
    const auto batch = sampler->next_batch();
    for (auto& p : params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    for (const auto& chunk : dp::split_into_chunks(batch, chunk_examples)) {
      auto recording = s.engine->record();
      const auto losses = task.losses(chunk, stats);
      const auto clipped = s.engine->clip_and_accumulate(losses, k);
      if (clipped.sensitivity != plan.sensitivity) {
        throw std::logic_error("the engine clipped to sensitivity " +
                               std::to_string(clipped.sensitivity) +
                               " but the plan noises for " +
                               std::to_string(plan.sensitivity));
      }
      if (clipped.diagnostics) {
        at::Tensor norms = clipped.diagnostics->norms;
        if (norms.dim() == 2) norms = norms.pow(2).sum(1).sqrt();
        norms = norms.to(at::kDouble).contiguous();
        epoch_norms.insert(epoch_norms.end(), norms.data_ptr<double>(),
                           norms.data_ptr<double>() + norms.numel());
        epoch_clipped += clipped.diagnostics->fraction_clipped *
                         static_cast<double>(clipped.batch_size);
      }
    }
    dp::finalize_noisy_gradient(params, noise_options, *noise);
    s.optimization->step(*s.model, step);
    ++step;
    bar->update(
        step - epoch * steps_per_epoch,
        "loss " +
            format_fixed(stats.count ? stats.loss_sum / stats.count : 0.0, 3) +
            " (non-private)");

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
      if (c.diagnostics) {
        log(diagnostics_line(context.epoch, epoch_norms, epoch_clipped));
        epoch_norms.clear();
        epoch_clipped = 0.0;
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
  result.steps_accounted = s.budget->steps();
  // ε of the configured accountant is the budget's own (the one its stop
  // rule used); the other accountant's figure is reported beside it, with
  // the same options.
  const auto& budget = s.budget->options();
  result.epsilon = s.budget->epsilon();
  accountant::RdpAccountant rdp(budget.rdp);
  rdp.set_history(s.budget->history());
  result.epsilon_rdp = rdp.get_epsilon(plan.delta).epsilon;
  result.epsilon_prv_upper = kNaN;
  try {
    accountant::PrvAccountant prv(budget.prv);
    prv.set_history(s.budget->history());
    result.epsilon_prv_upper = prv.get_epsilon(plan.delta).upper;
  } catch (const std::invalid_argument&) {
    // PRV's grid can be too large for extreme regimes; RDP still holds.
  }
  result.wall_seconds = elapsed();
  return result;
}

}  // namespace dptrain::train
