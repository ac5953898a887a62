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
#include "dptrain/dp/layers/autocast.h"
#include "dptrain/dp/mechanism/noise.h"
#include "dptrain/dp/mechanism/noise_generator.h"
#include "dptrain/dp/mechanism/poisson_sampler.h"
#include "dptrain/dp/mechanism/privacy_budget.h"
#include "dptrain/dp/mechanism/shuffled_sampler.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/distributed.h"
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
  std::shared_ptr<Communicator> communicator;  // data-parallel runs only
};

void PrivateLoop::set_communicator(std::shared_ptr<Communicator> communicator) {
  state_->communicator = std::move(communicator);
  // Rank 0 alone writes the route cache (the constructor assumed rank 0).
  if (state_->communicator && state_->communicator->rank() != 0) {
    auto routes = state_->engine->route_policy();
    routes.cache_file.clear();
    state_->engine->set_route_policy(std::move(routes));
  }
}

void PrivateLoop::set_noise_generator(
    std::unique_ptr<dp::NoiseGenerator> generator) {
  state_->injected_noise = std::move(generator);
}

PrivateLoop::PrivateLoop(std::shared_ptr<torch::nn::Module> model,
                         ValidConfig config)
    : state_(std::make_unique<State>()) {
  if (!model) throw std::invalid_argument("PrivateLoop: model is null");
  auto& s = *state_;
  s.model = std::move(model);
  s.config = *config;
  s.device = parse_device(s.config.device);
  s.communicator = process_communicator();
  s.model->to(s.device);
  dp::ClippingOptions clip(s.config.max_grad_norm);
  clip.mode(s.config.clipping == "per-layer" ? dp::ClipMode::kPerLayer
                                             : dp::ClipMode::kFlat)
      .normalize(s.config.normalize_clipped)
      .diagnostics(s.config.diagnostics);
  s.engine = std::make_unique<dp::GradientEngine>(s.model, clip);
  // Every rank measures for itself; rank 0 alone writes the cache.
  s.engine->set_route_policy(dp::load_route_policy(
      dp::parse_route_search(s.config.routes), s.config.route_cache,
      !s.communicator || s.communicator->rank() == 0));
  if (s.config.max_kept_mb >= 0) {
    s.engine->set_max_kept_bytes(s.config.max_kept_mb << 20);
  }
  s.engine->set_backward_passes(static_cast<int>(s.config.backward_passes));
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

// One call of PrivateLoop::run, phase by phase. Each phase is a member
// function named for what it does; the privacy-relevant state they share
// (the plan, the ledger, the sampler, the noise) lives here and nowhere else.
class PrivateLoop::Run {
 public:
  Run(PrivateLoop& loop, const PrivateTask& task)
      : loop_(loop), s_(*loop.state_), c_(s_.config), task_(task) {}

  LoopResult operator()() {
    check_task();
    open_record();
    make_plan();
    build_mechanism();
    if (resume_archive_) {
      on_every_rank("loading the checkpoint", [&] { restore(); });
      // A secret key is drawn afresh by load() on each rank; give them all
      // rank 0's.
      if (s_.communicator && !c_.seed) {
        sampler_->replace_key(
            share_key(*s_.communicator, dp::os_entropy_key()));
      }
    }
    announce();
    prepare_steps();
    while (step_ < plan_.steps && step()) {
      if (c_.checkpoint_every > 0 && step_ % c_.checkpoint_every == 0) save();
      if (step_ % plan_.steps_per_epoch == 0 || step_ == plan_.steps) {
        end_epoch();
      }
    }
    return finish();
  }

 private:
  void log(const std::string& line) const {
    if (rank0()) loop_.log(line);
  }
  // Rank 0 of a data-parallel run, or the only process: the one that writes.
  bool rank0() const {
    return !s_.communicator || s_.communicator->rank() == 0;
  }
  // Runs `part` on every rank, then agrees: when it threw on any rank, every
  // rank throws (its own error, or one pointing at the rank that failed), so
  // that no rank waits for a collective the others will never join.
  template <typename Part>
  void on_every_rank(const char* what, Part part) {
    if (!s_.communicator) return part();
    std::exception_ptr error;
    try {
      part();
    } catch (...) {
      error = std::current_exception();
    }
    std::vector<at::Tensor> failed{
        torch::full({1}, error ? 1.0 : 0.0, torch::kDouble)};
    s_.communicator->all_reduce_sum(failed);
    if (error) std::rethrow_exception(error);
    if (failed[0].item<double>() > 0) {
      throw std::runtime_error(
          std::string("rank ") + std::to_string(s_.communicator->rank()) +
          ": another rank failed while " + what +
          " (its message is in its output; rank 0's is the log)");
    }
  }
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         wall_start_)
        .count();
  }

  // Phase 1: what the run is; every output is checked before anything is
  // spent.
  void check_task() {
    if (!task_.losses) {
      throw std::invalid_argument(
          "PrivateLoop::run: the task has no loss function");
    }
    check_dataset_size(c_, task_.dataset_size);
    identity_ = run_identity(c_, task_.dataset_size, task_.identity_extra,
                             task_.data_fingerprint);
    check_outputs(c_);
  }

  // Phase 2: ownership of the checkpoint and its privacy record (invariant
  // 7): one run at a time; a fresh run never replaces a record unless told
  // to; a resumed run reads its σ and state.
  void open_record() {
    // Rank 0 owns the record (lock, ledger); the others read the ledger and
    // checkpoint once rank 0 has opened (and, if need be, repaired) them.
    on_every_rank("opening the checkpoint", [&] {
      if (rank0()) open_record_here();
    });
    on_every_rank("reading the checkpoint", [&] {
      if (!rank0()) open_record_here();
    });
  }
  void open_record_here() {
    if (!c_.checkpoint.empty() && rank0()) {
      lock_ = std::make_unique<CheckpointLock>(c_.checkpoint);
      const int stale = remove_stale_temporaries(c_.checkpoint) +
                        remove_stale_temporaries(ledger_path(c_.checkpoint));
      if (stale > 0) {
        log("removed " + std::to_string(stale) +
            " temporary file(s) of crashed runs beside " + c_.checkpoint);
      }
      const std::string record = ledger_path(c_.checkpoint);
      const bool has_checkpoint = std::filesystem::exists(c_.checkpoint);
      const bool has_ledger = std::filesystem::exists(record);
      if (!c_.resume && (has_checkpoint || has_ledger)) {
        refuse_or_overwrite(record, has_checkpoint, has_ledger);
      }
      if (c_.resume && !has_ledger) {
        throw std::runtime_error(
            "--resume: checkpoint '" + c_.checkpoint +
            "' has no privacy ledger '" + record +
            "' beside it, so the steps it spent cannot be verified (copy the "
            "ledger with the checkpoint)");
      }
      if (c_.resume) ledger_ = PrivacyLedger::open(record);
    } else if (!c_.checkpoint.empty() && c_.resume) {
      // Opened after rank 0 (which may have repaired it); never appended to
      // here: rank 0 alone writes the ledger.
      ledger_ = PrivacyLedger::open(ledger_path(c_.checkpoint));
    }
    if (c_.resume) {
      resume_archive_ = std::make_unique<torch::serialize::InputArchive>();
      load_checkpoint(c_.checkpoint, *resume_archive_);
      c10::IValue saved_sigma;
      if (!resume_archive_->try_read("noise_multiplier", saved_sigma)) {
        throw std::runtime_error("checkpoint '" + c_.checkpoint +
                                 "' has no noise_multiplier");
      }
      resumed_sigma_ = saved_sigma.toDouble();
    }
  }

  void refuse_or_overwrite(const std::string& record, bool has_checkpoint,
                           bool has_ledger) {
    std::string what = "checkpoint '" + c_.checkpoint + "'";
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
    if (!c_.overwrite) {
      throw std::invalid_argument(
          "--checkpoint: " + what +
          (has_checkpoint && has_ledger ? " already exist"
                                        : " already exists") +
          "; give --resume to continue that run, or --overwrite to discard "
          "its record and start afresh");
    }
    log("--overwrite: discarding " + what +
        "; the steps it spent are no longer on record");
  }

  // Phase 3: the privacy of the run, once (q, T, σ, the engine's
  // sensitivity, ...). Everything below reads plan_.
  void make_plan() {
    plan_ =
        make_dp_plan(c_, task_.dataset_size, s_.engine->options().sensitivity(),
                     task_.privacy_unit, resumed_sigma_);
    result_.plan = plan_;
    result_.sample_rate = plan_.sample_rate;
    result_.noise_multiplier = plan_.noise_multiplier;
    result_.delta = plan_.delta;
    result_.seeded = plan_.seeded;
  }

  // Phase 4: randomness, seeded (reproducible, key kept in checkpoints) or
  // secure (OS-keyed; no key is ever written, invariant 8), and the
  // optimizer.
  void build_mechanism() {
    const std::int64_t n = plan_.dataset_size;
    dp::ChaChaKey key =
        c_.seed ? dp::key_from_seed(*c_.seed) : dp::os_entropy_key();
    // One global batch per step for the whole run: every rank samples with
    // rank 0's key and keeps its share (distributed.h).
    if (s_.communicator) key = share_key(*s_.communicator, key);
    const auto key_policy =
        c_.seed ? dp::SamplerKey::kReproducible : dp::SamplerKey::kSecret;
    if (plan_.sampler == "poisson") {
      sampler_ = std::make_unique<dp::PoissonSampler>(n, plan_.sample_rate, key,
                                                      key_policy);
    } else {
      sampler_ = std::make_unique<dp::ShuffledFixedSizeSampler>(
          n, plan_.expected_batch_size, key, key_policy);
    }
    if (s_.injected_noise) {
      noise_ = std::move(s_.injected_noise);
    } else if (c_.seed) {
      noise_ =
          std::make_unique<dp::SeededNoise>(*c_.seed ^ 0x9E3779B97F4A7C15ULL);
    } else {
      noise_ = std::make_unique<dp::SecureNoise>();
    }
    s_.optimization = std::make_unique<Optimization>(
        s_.engine->parameters(), *s_.model, c_, plan_.steps);
    result_.privacy_note = sampler_->privacy_note();
  }

  // Phase 5 (resume only): the checkpoint must be this run's; everything is
  // loaded or nothing is, and the ledger's history replaces the checkpoint's.
  void restore() {
    auto& in = *resume_archive_;
    c10::IValue value;
    if (!in.try_read("identity", value)) {
      throw std::runtime_error("checkpoint '" + c_.checkpoint +
                               "' has no run identity");
    }
    const auto saved = nlohmann::json::parse(value.toStringRef());
    if (saved != identity_) {
      throw std::invalid_argument(
          "checkpoint '" + c_.checkpoint + "' belongs to another run: saved " +
          saved.dump() + ", this run " + identity_.dump());
    }
    in.read("step", value);
    const auto saved_step = value.toInt();
    if (!in.try_read("run_id", value) ||
        value.toStringRef() != ledger_->run_id()) {
      throw std::runtime_error("checkpoint '" + c_.checkpoint +
                               "' and privacy ledger '" + ledger_->path() +
                               "' belong to different runs");
    }
    run_id_ = ledger_->run_id();
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
      for (const auto& t : s_.model->parameters())
        backup.push_back(t.detach().clone());
      for (const auto& t : s_.model->buffers())
        backup.push_back(t.detach().clone());
    }
    try {
      check_module_archive(*s_.model, model_in, "");
      s_.model->load(model_in);
      sampler_->load(sampler_in);
      noise_->load(noise_in);
      s_.optimization->load(opt_in);
      // Checks the accountant and δ; the ledger then replaces the history:
      // it holds every executed step, the checkpoint only those before it.
      s_.budget->load(privacy_in);
      if (ledger_->steps() < s_.budget->steps()) {
        throw std::runtime_error("its privacy ledger records " +
                                 std::to_string(ledger_->steps()) +
                                 " steps, fewer than the checkpoint's " +
                                 std::to_string(s_.budget->steps()));
      }
      s_.budget = std::make_unique<dp::PrivacyBudget>(s_.budget->options(),
                                                      ledger_->history());
      if (task_.load) task_.load(in);
    } catch (const std::exception& e) {
      torch::NoGradGuard no_grad;
      std::size_t i = 0;
      for (auto& t : s_.model->parameters()) t.copy_(backup[i++]);
      for (auto& t : s_.model->buffers()) t.copy_(backup[i++]);
      throw std::runtime_error(
          "checkpoint '" + c_.checkpoint +
          "' does not match this model or run; nothing was loaded: " +
          e.what());
    }
    step_ = saved_step;
    log("resumed from " + c_.checkpoint + " at step " + std::to_string(step_) +
        " (" + std::to_string(s_.budget->steps()) +
        " steps accounted by the ledger, " +
        std::to_string(s_.budget->steps() - step_) +
        " of them lost in an interruption; epsilon " +
        format_fixed(loop_.epsilon()) + " already spent)");
  }

  // Phase 6: the plan line and warnings; a fresh run writes its record,
  // then a checkpoint at step 0, so that from the first step on there is
  // always a checkpoint to resume from and a ledger that counts.
  void announce() {
    log(plan_.describe(noise_->name(), sampler_->name()));
    if (!sampler_->poisson()) log("WARNING: " + sampler_->privacy_note());
    if (c_.mixed_precision != "no") {
      log("mixed precision: the training forward autocasts to " +
          c_.mixed_precision + " on " + s_.device.str() +
          "; per-example norms, clipped sums and noise are float32");
    }
    if (c_.seed) {
      log(std::string("WARNING: ") + kSeededNotice +
          " (the seed determines the batches and the noise)");
    }
    if (!c_.checkpoint.empty() && !c_.resume && rank0()) {
      ledger_ = PrivacyLedger::create(ledger_path(c_.checkpoint), run_id_,
                                      identity_.dump());
      save();
    }
  }

  void prepare_steps() {
    metrics_ = std::make_unique<MetricsLog>(rank0() ? c_.metrics : "");
    group_size_ = std::max<std::int64_t>(1, task_.group_size);
    precision_ = dp::parse_mixed_precision(c_.mixed_precision);
    chunk_examples_ =
        std::max<std::int64_t>(1, c_.max_physical_batch_size / group_size_);
    params_ = s_.engine->parameters();
    noise_options_.noise_multiplier = plan_.noise_multiplier;
    noise_options_.max_grad_norm = plan_.sensitivity;
    noise_options_.expected_batch_size =
        static_cast<double>(plan_.expected_batch_size);
    epoch_ = step_ / plan_.steps_per_epoch;
    new_progress_bar();
    s_.model->train();
  }

  // Phase 7: one logical step. Returns false, taking nothing, when the
  // step would pass the target (invariant 6).
  bool step() {
    if (!s_.budget->allows_step(plan_.step_event())) {
      result_.stopped_by_budget = true;
      log("stopping before step " + std::to_string(step_ + 1) +
          ": it would take epsilon past the target " +
          format_fixed(plan_.target_epsilon.value_or(0.0)));
      return false;
    }
    // Write-ahead (invariant 7): the step is on the ledger, on disk, before
    // anything it computes exists.
    if (ledger_ && rank0()) {
      ledger_->append(plan_.sample_rate, plan_.noise_multiplier);
    }
    s_.budget->record(plan_.step_event());
    auto batch = sampler_->next_batch();
    if (s_.communicator) {
      batch = rank_share(batch, s_.communicator->rank(),
                         s_.communicator->world_size());
    }
    for (auto& p : params_) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    for (const auto& chunk : dp::split_into_chunks(batch, chunk_examples_)) {
      clip_chunk(chunk);
    }
    // Invariants 2 and 3: noise once per step, after every chunk, divided by
    // the expected batch size. Data-parallel: rank 0 alone adds its draw to
    // its clipped sum, the sums are all-reduced, every rank divides: one draw
    // in the sum (distributed.h).
    if (s_.communicator) {
      dp::validate(noise_options_);
      if (rank0()) {
        dp::add_gaussian_noise(params_, noise_options_.noise_std(), *noise_);
      }
      all_reduce_gradients(*s_.communicator, params_);
      dp::divide_by_expected_batch_size(params_,
                                        noise_options_.expected_batch_size);
    } else {
      dp::finalize_noisy_gradient(params_, noise_options_, *noise_);
    }
    s_.optimization->step(*s_.model, step_);
    ++step_;
    if (rank0())
      bar_->update(
          step_ - epoch_ * plan_.steps_per_epoch,
          "loss " +
              format_fixed(stats_.count ? stats_.loss_sum / stats_.count : 0.0,
                           3) +
              " (non-private)");
    return true;
  }

  void clip_chunk(const std::vector<std::int64_t>& chunk) {
    auto recording = s_.engine->record();
    at::Tensor losses;
    {
      // Only the forward autocasts; the engine promotes each layer's A and G
      // to float32 before its rule, and the losses are summed in float32.
      dp::AutocastGuard autocast(s_.device.type(), precision_);
      losses = task_.losses(chunk, stats_);
    }
    losses = dp::promote_to(losses, at::kFloat);
    const auto clipped = s_.engine->clip_and_accumulate(losses, group_size_);
    if (clipped.sensitivity != plan_.sensitivity) {
      throw std::logic_error("the engine clipped to sensitivity " +
                             std::to_string(clipped.sensitivity) +
                             " but the plan noises for " +
                             std::to_string(plan_.sensitivity));
    }
    if (clipped.diagnostics) {
      at::Tensor norms = clipped.diagnostics->norms;
      if (norms.dim() == 2) norms = norms.pow(2).sum(1).sqrt();
      norms = norms.to(at::kDouble).contiguous();
      epoch_norms_.insert(epoch_norms_.end(), norms.data_ptr<double>(),
                          norms.data_ptr<double>() + norms.numel());
      epoch_clipped_ += clipped.diagnostics->fraction_clipped *
                        static_cast<double>(clipped.batch_size);
    }
  }

  // Phase 8: the task's report, --diagnostics (NON-PRIVATE), a checkpoint.
  void end_epoch() {
    bar_->finish();
    EpochContext context;
    context.epoch = ++epoch_;
    context.step = step_;
    context.stats = stats_;
    context.epsilon = loop_.epsilon();
    context.seconds = elapsed();
    if (task_.end_epoch) {
      const auto out = task_.end_epoch(context);
      if (!out.line.empty()) log(out.line);
      if (!out.metrics_json.empty()) metrics_->write(out.metrics_json);
    }
    if (c_.diagnostics) {
      log(diagnostics_line(context.epoch, epoch_norms_, epoch_clipped_));
      epoch_norms_.clear();
      epoch_clipped_ = 0.0;
    }
    if (c_.checkpoint_every == 0) save();
    stats_ = LoopStats();
    if (step_ < plan_.steps) new_progress_bar();
  }

  // Phase 9: the last checkpoint and ε from every step accounted. The
  // configured accountant's ε is the budget's own (the one its stop rule
  // used); the other accountant's is reported beside it with the same
  // options.
  LoopResult finish() {
    bar_->finish();
    if (!c_.checkpoint.empty()) save();
    result_.steps = step_;
    result_.steps_accounted = s_.budget->steps();
    const auto& budget = s_.budget->options();
    result_.epsilon = s_.budget->epsilon();
    accountant::RdpAccountant rdp(budget.rdp);
    rdp.set_history(s_.budget->history());
    result_.epsilon_rdp = rdp.get_epsilon(plan_.delta).epsilon;
    result_.epsilon_prv_upper = kNaN;
    try {
      accountant::PrvAccountant prv(budget.prv);
      prv.set_history(s_.budget->history());
      result_.epsilon_prv_upper = prv.get_epsilon(plan_.delta).upper;
    } catch (const std::invalid_argument&) {
      // PRV's grid can be too large for extreme regimes; RDP still holds.
    }
    result_.wall_seconds = elapsed();
    return result_;
  }

  void new_progress_bar() {
    bar_ = std::make_unique<ProgressBar>("epoch " + std::to_string(epoch_ + 1),
                                         plan_.steps_per_epoch);
  }

  void save() const {
    if (c_.checkpoint.empty() || !rank0()) return;
    torch::serialize::OutputArchive out;
    out.write("identity", c10::IValue(identity_.dump()));
    out.write("config", c10::IValue(to_json(c_)));
    out.write("run_id", c10::IValue(run_id_));
    // Private training state, never a release artefact (weights files are).
    out.write("release",
              c10::IValue(c_.seed ? std::string(kSeededNotice) +
                                        "; private training state, do not "
                                        "publish"
                                  : std::string("private training state, do "
                                                "not publish: release the "
                                                "weights file")));
    out.write("step", c10::IValue(step_));
    out.write("steps_accounted", c10::IValue(s_.budget->steps()));
    out.write("noise_multiplier", c10::IValue(plan_.noise_multiplier));
    out.write("plan", c10::IValue(plan_.to_json()));
    if (task_.save) task_.save(out);
    torch::serialize::OutputArchive model_out, sampler_out, noise_out, opt_out,
        privacy_out;
    s_.budget->save(privacy_out);
    out.write("privacy", privacy_out);
    s_.model->save(model_out);
    sampler_->save(sampler_out);
    noise_->save(noise_out);
    s_.optimization->save(opt_out);
    out.write("model", model_out);
    out.write("sampler", sampler_out);
    out.write("noise", noise_out);
    out.write("optimization", opt_out);
    save_checkpoint(out, c_.checkpoint);
  }

  PrivateLoop& loop_;
  PrivateLoop::State& s_;
  const TrainConfig& c_;
  const PrivateTask& task_;
  const std::chrono::steady_clock::time_point wall_start_ =
      std::chrono::steady_clock::now();

  nlohmann::json identity_;
  std::unique_ptr<CheckpointLock> lock_;
  std::optional<PrivacyLedger> ledger_;
  std::string run_id_ = new_run_id();
  std::unique_ptr<torch::serialize::InputArchive> resume_archive_;
  std::optional<double> resumed_sigma_;
  DpPlan plan_;
  std::unique_ptr<dp::BatchSampler> sampler_;
  std::unique_ptr<dp::NoiseGenerator> noise_;
  LoopResult result_;
  std::int64_t step_ = 0;

  std::unique_ptr<MetricsLog> metrics_;
  std::int64_t group_size_ = 1;
  dp::MixedPrecision precision_ = dp::MixedPrecision::kNone;
  std::int64_t chunk_examples_ = 1;
  std::vector<torch::Tensor> params_;
  dp::NoiseOptions noise_options_;
  LoopStats stats_;
  // --diagnostics: the epoch's un-noised per-example norms. NOT PRIVATE.
  std::vector<double> epoch_norms_;
  double epoch_clipped_ = 0.0;
  std::int64_t epoch_ = 0;
  std::unique_ptr<ProgressBar> bar_;
};

LoopResult PrivateLoop::run(const PrivateTask& task) {
  return Run(*this, task)();
}

}  // namespace dptrain::train
