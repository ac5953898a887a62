#include "dptrain/train/classifier_trainer.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>

#include "dptrain/accountant/calibration.h"
#include "dptrain/datasets/transforms.h"
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

constexpr std::int64_t kEvalBatch = 1024;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fmt(double v, int precision = 4) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(precision) << v;
  return out.str();
}

// Fields of the config that must not change across a resume: they define
// the privacy of the run (q, σ, C) or what is being trained.
// σ is not part of it: a resumed run keeps the σ it started with (stored in
// the checkpoint), and the budget check stops it when more steps are asked
// for than the target allows.
nlohmann::json run_identity(const TrainConfig& c, std::int64_t dataset_size) {
  return {{"dataset_size", dataset_size},
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
}

// Throws naming the first tensor of `module` that `archive` lacks or holds
// with another shape (LibTorch's Module::load would silently take it).
void check_module_archive(const torch::nn::Module& module,
                          torch::serialize::InputArchive& archive, const std::string& prefix) {
  auto check = [&](const std::string& name, const torch::Tensor& expected, bool is_buffer) {
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
    check_module_archive(*child.value(), child_archive, prefix + child.key() + ".");
  }
}

}  // namespace

InputNormalization input_normalization(const std::string& dataset_name,
                                       std::int64_t channels) {
  // Published per-channel statistics of the public benchmark data sets;
  // anything else uses a data-independent map to [-1, 1].
  if (dataset_name == "fashion-mnist" && channels == 1) return {{0.2860}, {0.3530}};
  if (dataset_name == "mnist" && channels == 1) return {{0.1307}, {0.3081}};
  if ((dataset_name == "cifar10" || dataset_name == "cifar-10") && channels == 3) {
    return {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}};
  }
  return {std::vector<double>(channels, 0.5), std::vector<double>(channels, 0.5)};
}

struct ClassifierTrainer::State {
  std::shared_ptr<models::ImageClassifier> model;
  TrainConfig config;
  c10::Device device{c10::kCPU};
  std::unique_ptr<dp::GradientEngine> engine;
  std::unique_ptr<Optimization> optimization;  // optimizer, schedule, EMA
  std::unique_ptr<dp::PrivacyBudget> budget;   // events so far; the stop rule
  InputNormalization normalization;
  datasets::ChannelStats stats;
};

ClassifierTrainer::ClassifierTrainer(std::shared_ptr<models::ImageClassifier> model,
                                     TrainConfig config)
    : state_(std::make_unique<State>()) {
  if (!model) throw std::invalid_argument("ClassifierTrainer: model is null");
  config.validate();
  state_->model = std::move(model);
  state_->config = std::move(config);
  state_->device = parse_device(state_->config.device);
  state_->model->to(state_->device);
  dp::ClippingOptions clip(state_->config.max_grad_norm);
  clip.mode(state_->config.clipping == "per-layer" ? dp::ClipMode::kPerLayer
                                                   : dp::ClipMode::kFlat)
      .normalize(state_->config.normalize_clipped)
      .diagnostics(state_->config.diagnostics);
  state_->engine = std::make_unique<dp::GradientEngine>(
      std::static_pointer_cast<torch::nn::Module>(state_->model), clip);
  dp::PrivacyBudgetOptions budget;
  budget.delta = state_->config.delta;
  if (state_->config.target_epsilon > 0) budget.target_epsilon = state_->config.target_epsilon;
  budget.accountant = accountant::parse_accountant_kind(state_->config.accountant);
  state_->budget = std::make_unique<dp::PrivacyBudget>(budget);
  log = [](const std::string& line) { std::cout << line << std::endl; };
}

ClassifierTrainer::~ClassifierTrainer() = default;

const accountant::EventHistory& ClassifierTrainer::privacy_history() const {
  return state_->budget->history();
}

double ClassifierTrainer::epsilon() const { return state_->budget->epsilon(); }

EvalResult ClassifierTrainer::evaluate(const datasets::ImageDataset& data, bool use_ema) {
  auto& s = *state_;
  const bool swap = use_ema && s.optimization && s.optimization->has_ema();
  if (swap) s.optimization->swap_ema(*s.model);
  EvalResult r;
  r.count = data.size();
  const auto classes = data.num_classes();
  std::vector<std::int64_t> correct_c(classes, 0), total_c(classes, 0);
  std::int64_t groups = 0;
  if (data.has_groups() && data.size() > 0) {
    groups = data.groups().max().item<std::int64_t>() + 1;
  }
  std::vector<std::int64_t> correct_g(std::max<std::int64_t>(groups, 0), 0),
      total_g(std::max<std::int64_t>(groups, 0), 0);
  double loss_sum = 0.0;
  std::int64_t correct = 0;
  {
    torch::NoGradGuard no_grad;
    const bool was_training = s.model->is_training();
    s.model->eval();
    for (std::int64_t start = 0; start < data.size(); start += kEvalBatch) {
      const auto end = std::min(data.size(), start + kEvalBatch);
      auto idx = torch::arange(start, end, torch::kLong);
      auto batch = data.get_batch(idx, s.device);
      auto x = datasets::standardize(batch.images, s.stats);
      auto logits = s.model->forward(x);
      auto labels = batch.labels;
      loss_sum += torch::nn::functional::cross_entropy(
                      logits, labels,
                      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
      auto hit = (logits.argmax(1) == labels).to(torch::kCPU);
      auto labels_cpu = labels.to(torch::kCPU);
      auto groups_cpu = batch.groups.defined() ? batch.groups.to(torch::kCPU) : torch::Tensor();
      auto hit_a = hit.accessor<bool, 1>();
      auto lab_a = labels_cpu.accessor<std::int64_t, 1>();
      for (std::int64_t i = 0; i < hit.size(0); ++i) {
        correct += hit_a[i];
        correct_c[lab_a[i]] += hit_a[i];
        total_c[lab_a[i]] += 1;
        if (groups > 0) {
          const auto g = groups_cpu[i].item<std::int64_t>();
          if (g >= 0) {
            correct_g[g] += hit_a[i];
            total_g[g] += 1;
          }
        }
      }
    }
    s.model->train(was_training);
  }
  if (swap) s.optimization->swap_ema(*s.model);
  r.loss = r.count > 0 ? loss_sum / static_cast<double>(r.count) : kNaN;
  r.accuracy = r.count > 0 ? static_cast<double>(correct) / static_cast<double>(r.count) : kNaN;
  for (std::int64_t c = 0; c < classes; ++c) {
    r.per_class_accuracy.push_back(total_c[c] > 0 ? static_cast<double>(correct_c[c]) / total_c[c]
                                                  : kNaN);
  }
  for (std::int64_t g = 0; g < groups; ++g) {
    r.per_group_accuracy.push_back(total_g[g] > 0 ? static_cast<double>(correct_g[g]) / total_g[g]
                                                  : kNaN);
  }
  return r;
}

FitResult ClassifierTrainer::fit(const datasets::ImageDataset& train,
                                 const datasets::ImageDataset* eval) {
  auto& s = *state_;
  const auto& c = s.config;
  const auto wall_start = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  };
  const std::int64_t n = train.size();
  if (n == 0) throw std::invalid_argument("--dataset: the training set is empty");
  if (c.batch_size > n) {
    throw std::invalid_argument("--batch-size " + std::to_string(c.batch_size) +
                                " is larger than the training set (" + std::to_string(n) +
                                " examples)");
  }
  if (train.shape()[0] != s.model->in_channels()) {
    throw std::invalid_argument("--model expects " + std::to_string(s.model->in_channels()) +
                                " input channel(s), the data set has " +
                                std::to_string(train.shape()[0]));
  }
  if (train.num_classes() > s.model->num_classes()) {
    throw std::invalid_argument("the data set has " + std::to_string(train.num_classes()) +
                                " classes, the model outputs " +
                                std::to_string(s.model->num_classes()));
  }
  s.normalization = input_normalization(c.dataset, train.shape()[0]);
  s.stats = {s.normalization.mean, s.normalization.std};

  // The privacy schedule: q, T, σ.
  const double q = static_cast<double>(c.batch_size) / static_cast<double>(n);
  std::int64_t total_steps = c.steps;
  if (total_steps == 0) {
    total_steps = accountant::rate_and_steps({n, c.batch_size, static_cast<double>(c.epochs)}).steps;
  }
  const auto kind = accountant::parse_accountant_kind(c.accountant);
  double sigma = c.noise_multiplier;
  std::unique_ptr<torch::serialize::InputArchive> resume_archive;
  if (c.resume) {
    resume_archive = std::make_unique<torch::serialize::InputArchive>();
    load_checkpoint(c.checkpoint, *resume_archive);
    c10::IValue saved_sigma;
    if (!resume_archive->try_read("noise_multiplier", saved_sigma)) {
      throw std::runtime_error("checkpoint '" + c.checkpoint + "' has no noise_multiplier");
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
  const dp::ChaChaKey key = c.seed ? dp::key_from_seed(*c.seed) : dp::os_entropy_key();
  std::unique_ptr<dp::BatchSampler> sampler;
  if (c.sampler == "poisson") {
    sampler = std::make_unique<dp::PoissonSampler>(n, q, key);
  } else {
    sampler = std::make_unique<dp::ShuffledFixedSizeSampler>(n, c.batch_size, key);
  }
  std::unique_ptr<dp::NoiseGenerator> noise;
  if (c.seed) {
    noise = std::make_unique<dp::SeededNoise>(*c.seed ^ 0x9E3779B97F4A7C15ULL);
  } else {
    noise = std::make_unique<dp::SecureNoise>();
  }
  std::mt19937_64 augment_rng(c.seed ? *c.seed + 1 : std::random_device{}());

  s.optimization = std::make_unique<Optimization>(s.engine->parameters(), *s.model, c, total_steps);

  FitResult result;
  result.sample_rate = q;
  result.noise_multiplier = sigma;
  result.delta = c.delta;
  result.privacy_note = sampler->privacy_note();
  const auto identity = run_identity(c, n);

  // Resume.
  std::int64_t step = 0;
  if (resume_archive) {
    auto& in = *resume_archive;
    c10::IValue value;
    if (!in.try_read("identity", value)) {
      throw std::runtime_error("checkpoint '" + c.checkpoint + "' has no run identity");
    }
    const auto saved = nlohmann::json::parse(value.toStringRef());
    if (saved != identity) {
      throw std::invalid_argument("checkpoint '" + c.checkpoint +
                                  "' belongs to another run: saved " + saved.dump() +
                                  ", this run " + identity.dump());
    }
    in.read("step", value);
    const auto saved_step = value.toInt();
    in.read("augment_rng", value);
    std::istringstream rng_in(value.toStringRef());
    std::mt19937_64 saved_rng;
    rng_in >> saved_rng;
    torch::serialize::InputArchive model_in, sampler_in, noise_in, opt_in, privacy_in;
    in.read("privacy", privacy_in);
    in.read("model", model_in);
    in.read("sampler", sampler_in);
    in.read("noise", noise_in);
    in.read("optimization", opt_in);
    // The model is the only live object loaded here that outlives fit(): keep
    // a copy so that a failure part-way leaves it as it was.
    std::vector<torch::Tensor> backup;
    {
      torch::NoGradGuard no_grad;
      for (const auto& t : s.model->parameters()) backup.push_back(t.detach().clone());
      for (const auto& t : s.model->buffers()) backup.push_back(t.detach().clone());
    }
    try {
      check_module_archive(*s.model, model_in, "");
      s.model->load(model_in);
      sampler->load(sampler_in);
      noise->load(noise_in);
      s.optimization->load(opt_in);
      s.budget->load(privacy_in);
    } catch (const std::exception& e) {
      torch::NoGradGuard no_grad;
      std::size_t i = 0;
      for (auto& t : s.model->parameters()) t.copy_(backup[i++]);
      for (auto& t : s.model->buffers()) t.copy_(backup[i++]);
      throw std::runtime_error("checkpoint '" + c.checkpoint +
                               "' does not match this model or run; nothing was loaded: " +
                               e.what());
    }
    augment_rng = saved_rng;
    step = saved_step;
    log("resumed from " + c.checkpoint + " at step " + std::to_string(step) + " (epsilon " +
        fmt(epsilon()) + " already spent)");
  }

  auto save = [&] {
    if (c.checkpoint.empty()) return;
    torch::serialize::OutputArchive out;
    out.write("identity", c10::IValue(identity.dump()));
    out.write("config", c10::IValue(to_json(c)));
    out.write("step", c10::IValue(step));
    out.write("noise_multiplier", c10::IValue(sigma));
    std::ostringstream rng_out;
    rng_out << augment_rng;
    out.write("augment_rng", c10::IValue(rng_out.str()));
    torch::serialize::OutputArchive model_out, sampler_out, noise_out, opt_out, privacy_out;
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
  plan << "plan: " << n << " examples, q = " << fmt(q, 6) << " (expected batch "
       << c.batch_size << "), " << total_steps << " steps (" << fmt(total_steps * q, 2)
       << " epochs), noise_multiplier = " << fmt(sigma) << ", max_grad_norm = "
       << c.max_grad_norm << (c.normalize_clipped ? " (normalized)" : "")
       << ", delta = " << c.delta << ", accountant = " << c.accountant
       << ", noise = " << noise->name() << ", sampler = " << sampler->name()
       << ", adjacency = add/remove one example";
  log(plan.str());
  if (!sampler->poisson()) log("WARNING: " + sampler->privacy_note());

  MetricsLog metrics(c.metrics);
  const std::int64_t k = std::max<std::int64_t>(1, c.augmult);
  const std::int64_t chunk_examples = std::max<std::int64_t>(1, c.max_physical_batch_size / k);
  const auto params = s.engine->parameters();
  dp::NoiseOptions noise_options;
  noise_options.noise_multiplier = sigma;
  noise_options.max_grad_norm = c.normalize_clipped ? 1.0 : c.max_grad_norm;
  noise_options.expected_batch_size = static_cast<double>(c.batch_size);
  datasets::AugmentOptions augment;

  double loss_sum = 0.0;
  std::int64_t loss_count = 0, correct = 0;
  std::int64_t epoch = step / steps_per_epoch;
  auto bar = std::make_unique<ProgressBar>("epoch " + std::to_string(epoch + 1), steps_per_epoch);
  s.model->train();

  while (step < total_steps) {
    // Privacy invariant 6: never take a step that would pass the target.
    if (!s.budget->allows_step({q, sigma, 1})) {
      result.stopped_by_budget = true;
      log("stopping before step " + std::to_string(step + 1) + ": it would take epsilon past " +
          "the target " + fmt(c.target_epsilon));
      break;
    }
    const auto batch = sampler->next_batch();
    for (auto& p : params) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    for (const auto& chunk : dp::split_into_chunks(batch, chunk_examples)) {
      datasets::Batch b = c.augmult > 0
                              ? datasets::get_augmented_batch(train, chunk, k, augment,
                                                              augment_rng, s.device)
                              : train.get_batch(chunk, s.device);
      auto x = datasets::standardize(b.images, s.stats);
      torch::Tensor losses;
      {
        auto recording = s.engine->record();
        auto logits = s.model->forward(x);
        losses = torch::nn::functional::cross_entropy(
            logits, b.labels,
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
        {
          torch::NoGradGuard ng;
          loss_sum += losses.sum().item<double>() / static_cast<double>(k);
          correct += (logits.argmax(1) == b.labels).sum().item<std::int64_t>();
          loss_count += static_cast<std::int64_t>(chunk.size());
        }
        s.engine->clip_and_accumulate(losses, k);
      }
    }
    dp::finalize_noisy_gradient(params, noise_options, *noise);
    s.optimization->step(*s.model, step);
    s.budget->record({q, sigma, 1});
    ++step;
    bar->update(step - epoch * steps_per_epoch,
                "loss " + fmt(loss_count ? loss_sum / loss_count : 0.0, 3));

    const bool epoch_end = step % steps_per_epoch == 0 || step == total_steps;
    if (c.checkpoint_every > 0 && step % c.checkpoint_every == 0) save();
    if (epoch_end) {
      bar->finish();
      EpochRecord rec;
      rec.epoch = ++epoch;
      rec.step = step;
      rec.train_loss = loss_count ? loss_sum / loss_count : kNaN;
      rec.train_accuracy =
          loss_count ? static_cast<double>(correct) / static_cast<double>(loss_count * k) : kNaN;
      if (eval != nullptr) {
        rec.test = evaluate(*eval, false);
        if (s.optimization->has_ema()) rec.ema_test = evaluate(*eval, true);
      }
      rec.epsilon = epsilon();
      rec.seconds = elapsed();
      std::ostringstream line;
      line << "epoch " << rec.epoch << " step " << rec.step << ": train loss "
           << fmt(rec.train_loss) << " acc " << fmt(rec.train_accuracy) << " (non-private)";
      if (eval != nullptr) {
        line << ", test acc " << fmt(rec.test.accuracy);
        if (rec.ema_test.count > 0) line << ", ema test acc " << fmt(rec.ema_test.accuracy);
      }
      line << ", epsilon " << fmt(rec.epsilon) << ", " << fmt(rec.seconds, 1) << " s";
      log(line.str());
      nlohmann::json j = {{"epoch", rec.epoch},
                          {"step", rec.step},
                          {"train_loss_nonprivate", rec.train_loss},
                          {"train_accuracy_nonprivate", rec.train_accuracy},
                          {"epsilon", rec.epsilon},
                          {"delta", c.delta},
                          {"seconds", rec.seconds}};
      if (eval != nullptr) {
        j["test_accuracy"] = rec.test.accuracy;
        j["test_loss"] = rec.test.loss;
        if (rec.ema_test.count > 0) j["ema_test_accuracy"] = rec.ema_test.accuracy;
      }
      metrics.write(j.dump());
      result.epochs.push_back(rec);
      if (on_epoch) on_epoch(rec);
      if (c.checkpoint_every == 0) save();
      loss_sum = 0.0;
      loss_count = 0;
      correct = 0;
      if (step < total_steps) {
        bar = std::make_unique<ProgressBar>("epoch " + std::to_string(epoch + 1), steps_per_epoch);
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
  result.epsilon = kind == accountant::AccountantKind::kRdp ? result.epsilon_rdp
                                                            : result.epsilon_prv_upper;
  if (eval != nullptr) {
    result.test = result.epochs.empty() || result.epochs.back().step != step
                      ? evaluate(*eval, false)
                      : result.epochs.back().test;
    if (s.optimization->has_ema()) result.ema_test = evaluate(*eval, true);
  }
  result.wall_seconds = elapsed();
  return result;
}

std::string summary_json(const FitResult& r, const TrainConfig& c) {
  auto nan_to_null = [](double v) {
    return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
  };
  auto vec = [&](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(nan_to_null(x));
    return a;
  };
  nlohmann::json j = {
      {"test_accuracy", nan_to_null(r.test.count ? r.test.accuracy : kNaN)},
      {"ema_test_accuracy", nan_to_null(r.ema_test.count ? r.ema_test.accuracy : kNaN)},
      {"epsilon", nan_to_null(r.epsilon)},
      {"epsilon_rdp", nan_to_null(r.epsilon_rdp)},
      {"epsilon_prv_upper", nan_to_null(r.epsilon_prv_upper)},
      {"delta", r.delta},
      {"noise_multiplier", r.noise_multiplier},
      {"sample_rate", r.sample_rate},
      {"steps", r.steps},
      {"accountant", c.accountant},
      {"adjacency", "add_remove_one_example"},
      {"sampler", c.sampler},
      {"stopped_by_budget", r.stopped_by_budget},
      {"per_class_accuracy", vec(r.test.per_class_accuracy)},
      {"ema_per_class_accuracy", vec(r.ema_test.per_class_accuracy)},
      {"per_group_accuracy", vec(r.test.per_group_accuracy)},
      {"wall_seconds", r.wall_seconds},
      {"config", nlohmann::json::parse(to_json(c))},
  };
  if (!r.privacy_note.empty()) j["privacy_note"] = r.privacy_note;
  return j.dump();
}

}  // namespace dptrain::train
