#include "dptrain/train/lm_trainer.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "dptrain/models/safetensors.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/optimization.h"
#include "dptrain/train/private_loop.h"

namespace dptrain::train {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::json config_to_json(const models::GriffinConfig& c) {
  nlohmann::json types = nlohmann::json::array();
  for (const auto t : c.block_types) {
    types.push_back(t == models::TemporalBlockType::kAttention ? "attention"
                                                               : "recurrent");
  }
  return {{"name", c.name},
          {"vocab_size", c.vocab_size},
          {"width", c.width},
          {"block_types", types},
          {"num_heads", c.num_heads},
          {"lru_width", c.lru_width},
          {"mlp_expanded_width", c.mlp_expanded_width},
          {"attention_window", c.attention_window},
          {"conv_width", c.conv_width},
          {"logits_soft_cap", c.logits_soft_cap},
          {"scale_embeddings", c.scale_embeddings},
          {"scan_chunk", c.scan_chunk}};
}

models::GriffinConfig config_from_json(const nlohmann::json& j) {
  models::GriffinConfig c;
  c.name = j.at("name").get<std::string>();
  c.vocab_size = j.at("vocab_size").get<int64_t>();
  c.width = j.at("width").get<int64_t>();
  c.block_types.clear();
  for (const auto& t : j.at("block_types")) {
    const auto s = t.get<std::string>();
    if (s == "attention") {
      c.block_types.push_back(models::TemporalBlockType::kAttention);
    } else if (s == "recurrent") {
      c.block_types.push_back(models::TemporalBlockType::kRecurrent);
    } else {
      throw std::invalid_argument("unknown block type '" + s + "'");
    }
  }
  c.num_heads = j.at("num_heads").get<int64_t>();
  c.lru_width = j.at("lru_width").get<int64_t>();
  c.mlp_expanded_width = j.at("mlp_expanded_width").get<int64_t>();
  c.attention_window = j.at("attention_window").get<int64_t>();
  c.conv_width = j.at("conv_width").get<int64_t>();
  c.logits_soft_cap = j.at("logits_soft_cap").get<double>();
  c.scale_embeddings = j.at("scale_embeddings").get<bool>();
  c.scan_chunk = j.at("scan_chunk").get<int64_t>();
  c.validate();
  return c;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

nlohmann::json nan_to_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace

struct LmTrainer::State {
  models::Griffin model{nullptr};
  std::unique_ptr<PrivateLoop> loop;
};

LmTrainer::LmTrainer(models::Griffin model, TrainConfig config)
    : state_(std::make_unique<State>()) {
  if (!model) throw std::invalid_argument("LmTrainer: model is null");
  config.task = "lm";
  config.validate();
  const auto blocks = model->config().num_blocks();
  for (const auto b : config.train_blocks) {
    if (b >= blocks) {
      throw std::invalid_argument("--train-blocks " + std::to_string(b) +
                                  " is not a block of --model " + config.model +
                                  " (blocks 0.." + std::to_string(blocks - 1) +
                                  ")");
    }
  }
  if (!config.train_blocks.empty())
    model->train_only_blocks(config.train_blocks);
  if (config.freeze_embeddings) model->freeze_embeddings(true);
  state_->model = model;
  state_->loop = std::make_unique<PrivateLoop>(
      std::static_pointer_cast<torch::nn::Module>(model.ptr()),
      std::move(config));
  log = [](const std::string& line) { std::cout << line << std::endl; };
}

LmTrainer::~LmTrainer() = default;

double LmTrainer::epsilon() const { return state_->loop->epsilon(); }
const accountant::EventHistory& LmTrainer::privacy_history() const {
  return state_->loop->privacy_history();
}
models::Griffin LmTrainer::model() const { return state_->model; }

LmEvalResult LmTrainer::evaluate(const datasets::TextDataset& data,
                                 bool use_ema) {
  auto& s = *state_;
  auto* optimization = s.loop->optimization();
  const bool swap =
      use_ema && optimization != nullptr && optimization->has_ema();
  if (swap) optimization->swap_ema(*s.model);
  LmEvalResult r;
  r.sequences = data.size();
  r.tokens = data.size() * (data.sequence_length() - 1);
  double sum = 0.0;
  {
    torch::NoGradGuard no_grad;
    const bool was_training = s.model->is_training();
    s.model->eval();
    const auto chunk =
        std::max<std::int64_t>(1, s.loop->config().max_physical_batch_size);
    for (std::int64_t start = 0; start < data.size(); start += chunk) {
      std::vector<std::int64_t> idx;
      for (auto i = start; i < std::min(data.size(), start + chunk); ++i)
        idx.push_back(i);
      const auto batch = data.batch(idx).to(s.loop->device());
      // Equal lengths: the per-token mean is the mean of per-sequence means.
      sum += s.model->sequence_losses(batch).sum().item<double>();
    }
    s.model->train(was_training);
  }
  if (swap) optimization->swap_ema(*s.model);
  r.loss = r.sequences > 0 ? sum / static_cast<double>(r.sequences) : kNaN;
  r.perplexity = std::exp(r.loss);
  return r;
}

LmFitResult LmTrainer::fit(const datasets::TextDataset& train,
                           const datasets::TextDataset* eval) {
  auto& s = *state_;
  const auto& c = s.loop->config();
  const auto wall_start = std::chrono::steady_clock::now();
  if (train.sequence_length() != c.sequence_length) {
    throw std::invalid_argument(
        "--sequence-length is " + std::to_string(c.sequence_length) +
        " but the training sequences have " +
        std::to_string(train.sequence_length()) + " bytes");
  }
  LmFitResult result;
  // Before training; a resumed run's parameters are loaded only inside
  // run(), so its "initial" figure would describe the wrong model.
  const bool initial = eval != nullptr && !c.resume;
  if (initial) result.initial_eval = evaluate(*eval);
  const auto device = s.loop->device();
  const std::string unit =
      "one sequence of " + std::to_string(c.sequence_length) + " bytes";

  PrivateTask task;
  task.dataset_size = train.size();
  task.group_size = 1;
  task.privacy_unit = unit;
  task.identity_extra = nlohmann::json{
      {"task", "lm"},
      {"sequence_length", c.sequence_length},
      {"model", config_to_json(s.model->config())},
      {"freeze_embeddings", c.freeze_embeddings},
      {"train_blocks",
       c.train_blocks}}.dump();
  task.losses = [&](const std::vector<std::int64_t>& chunk, LoopStats& stats) {
    const auto batch = train.batch(chunk).to(device);
    auto losses = s.model->sequence_losses(batch);
    torch::NoGradGuard ng;
    stats.loss_sum += losses.sum().item<double>();
    stats.count += static_cast<std::int64_t>(chunk.size());
    return losses;
  };
  task.end_epoch = [&](const EpochContext& ctx) {
    LmEpochRecord rec;
    rec.epoch = ctx.epoch;
    rec.step = ctx.step;
    rec.train_loss = ctx.stats.count ? ctx.stats.loss_sum /
                                           static_cast<double>(ctx.stats.count)
                                     : kNaN;
    if (eval != nullptr) {
      rec.eval = evaluate(*eval, false);
      if (s.loop->optimization()->has_ema())
        rec.ema_eval = evaluate(*eval, true);
    }
    rec.epsilon = ctx.epsilon;
    rec.seconds = ctx.seconds;
    std::ostringstream line;
    line << "epoch " << rec.epoch << " step " << rec.step << ": train loss "
         << format_fixed(rec.train_loss) << " (non-private)";
    nlohmann::json j = {{"epoch", rec.epoch},
                        {"step", rec.step},
                        {"train_loss_nonprivate", nan_to_null(rec.train_loss)},
                        {"epsilon", rec.epsilon},
                        {"delta", c.delta},
                        {"seconds", rec.seconds}};
    if (eval != nullptr) {
      line << ", held-out loss " << format_fixed(rec.eval.loss)
           << " perplexity " << format_fixed(rec.eval.perplexity, 2);
      j["eval_loss"] = nan_to_null(rec.eval.loss);
      j["perplexity"] = nan_to_null(rec.eval.perplexity);
      if (rec.ema_eval.sequences > 0) {
        line << ", ema perplexity " << format_fixed(rec.ema_eval.perplexity, 2);
        j["ema_perplexity"] = nan_to_null(rec.ema_eval.perplexity);
      }
    }
    line << ", epsilon " << format_fixed(rec.epsilon) << ", "
         << format_fixed(rec.seconds, 1) << " s";
    result.epochs.push_back(rec);
    if (on_epoch) on_epoch(rec);
    return EpochOutput{line.str(), j.dump()};
  };
  // What `dptrain generate` needs to rebuild the model.
  task.save = [&](torch::serialize::OutputArchive& out) {
    out.write("lm_model",
              c10::IValue(config_to_json(s.model->config()).dump()));
  };

  s.loop->log = log;
  log("privacy unit: " + unit + " (" + std::to_string(train.size()) +
      " training sequences); the guarantee covers adding or removing one "
      "sequence");
  if (initial) {
    log("held-out before training: loss " +
        format_fixed(result.initial_eval.loss) + " perplexity " +
        format_fixed(result.initial_eval.perplexity, 2) + " (" +
        std::to_string(eval->size()) + " sequences)");
  }
  const LoopResult loop = s.loop->run(task);
  static_cast<LoopResult&>(result) = loop;
  if (eval != nullptr) {
    result.eval =
        result.epochs.empty() || result.epochs.back().step != loop.steps
            ? evaluate(*eval, false)
            : result.epochs.back().eval;
    if (s.loop->optimization()->has_ema())
      result.ema_eval = evaluate(*eval, true);
  }
  result.wall_seconds = std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - wall_start)
                            .count();
  return result;
}

std::string lm_summary_json(const LmFitResult& r, const TrainConfig& c) {
  const bool has_eval = r.eval.sequences > 0;
  const bool has_ema = r.ema_eval.sequences > 0;
  nlohmann::json j = {
      {"task", "lm"},
      {"perplexity", has_eval ? nan_to_null(r.eval.perplexity) : nullptr},
      {"ema_perplexity",
       has_ema ? nan_to_null(r.ema_eval.perplexity) : nullptr},
      {"initial_perplexity", r.initial_eval.sequences > 0
                                 ? nan_to_null(r.initial_eval.perplexity)
                                 : nullptr},
      {"eval_loss", has_eval ? nan_to_null(r.eval.loss) : nullptr},
      {"eval_tokens", r.eval.tokens},
      {"epsilon", nan_to_null(r.epsilon)},
      {"epsilon_rdp", nan_to_null(r.epsilon_rdp)},
      {"epsilon_prv_upper", nan_to_null(r.epsilon_prv_upper)},
      {"delta", r.delta},
      {"noise_multiplier", r.noise_multiplier},
      {"sample_rate", r.sample_rate},
      {"steps", r.steps},
      {"accountant", c.accountant},
      {"privacy_unit",
       "one sequence of " + std::to_string(c.sequence_length) + " bytes"},
      {"adjacency", "add_remove_one_sequence"},
      {"sampler", c.sampler},
      {"stopped_by_budget", r.stopped_by_budget},
      {"wall_seconds", r.wall_seconds},
      {"config", nlohmann::json::parse(to_json(c))},
  };
  if (!r.privacy_note.empty()) j["privacy_note"] = r.privacy_note;
  return j.dump();
}

LmRunResult run_lm_training(const TrainConfig& config) {
  config.validate();
  if (config.task != "lm") {
    throw std::invalid_argument("run_lm_training needs --task lm, got --task " +
                                config.task);
  }
  const std::string prefix = "text:";
  if (config.dataset.rfind(prefix, 0) != 0 ||
      config.dataset.size() == prefix.size()) {
    throw std::invalid_argument(
        "--dataset for --task lm must be text:FILE, got '" + config.dataset +
        "'");
  }
  const auto path = config.dataset.substr(prefix.size());
  const auto all =
      datasets::TextDataset::from_file(path, config.sequence_length);
  const double fraction =
      config.validation_fraction > 0 ? config.validation_fraction : 0.1;
  const auto n_eval = std::max<std::int64_t>(
      1, std::llround(fraction * static_cast<double>(all.size())));
  if (all.size() - n_eval < 1) {
    throw std::invalid_argument(
        "--dataset " + config.dataset + " has " + std::to_string(all.size()) +
        " sequence(s) of " + std::to_string(config.sequence_length) +
        " bytes; at least 2 are needed (training and held-out)");
  }
  // The held-out text is the file's tail: contiguous, never trained on.
  const auto train = all.slice(0, all.size() - n_eval);
  const auto eval = all.slice(all.size() - n_eval, all.size());

  models::GriffinConfig model_config;
  try {
    model_config = models::griffin_config(config.model);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--model: ") + e.what());
  }
  if (config.seed) torch::manual_seed(*config.seed);
  auto model = models::Griffin(model_config);
  if (!config.init_checkpoint.empty()) {
    const auto& f = config.init_checkpoint;
    if (ends_with(f, ".safetensors")) {
      models::load_griffin_safetensors(*model, f);
    } else if (ends_with(f, ".h5") || ends_with(f, ".hdf5")) {
      models::load_griffin_hdf5(*model, f);
    } else {
      throw std::invalid_argument(
          "--init-checkpoint must be a .safetensors or .h5 file, got '" + f +
          "'");
    }
  }
  LmTrainer trainer(model, config);
  LmRunResult run;
  run.fit = trainer.fit(train, &eval);
  auto summary = nlohmann::json::parse(lm_summary_json(run.fit, config));
  summary["train_sequences"] = train.size();
  summary["eval_sequences"] = eval.size();
  summary["eval_split"] = "tail of the file (held out)";
  run.summary_json = summary.dump();
  return run;
}

models::Griffin load_lm_checkpoint(const std::string& path) {
  torch::serialize::InputArchive in;
  load_checkpoint(path, in);
  c10::IValue value;
  if (!in.try_read("lm_model", value)) {
    throw std::runtime_error(
        "checkpoint '" + path +
        "' is not a language-model checkpoint (written by --task lm)");
  }
  models::GriffinConfig config;
  try {
    config = config_from_json(nlohmann::json::parse(value.toStringRef()));
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint '" + path +
                             "': bad model config: " + e.what());
  }
  auto model = models::Griffin(config);
  try {
    torch::serialize::InputArchive model_in;
    in.read("model", model_in);
    model->load(model_in);
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint '" + path +
                             "': cannot load the model: " + e.what());
  }
  return model;
}

std::string generate_from_checkpoint(const GenerateRequest& r) {
  if (r.checkpoint.empty())
    throw std::invalid_argument("--checkpoint is required");
  if (r.prompt.empty())
    throw std::invalid_argument("--prompt must not be empty");
  if (r.num_bytes < 0) {
    throw std::invalid_argument("--num-bytes must be >= 0, got " +
                                std::to_string(r.num_bytes));
  }
  if (!std::isfinite(r.temperature) || r.temperature < 0) {
    std::ostringstream v;
    v << r.temperature;
    throw std::invalid_argument(
        "--temperature must be >= 0 (0 = greedy), got " + v.str());
  }
  auto model = load_lm_checkpoint(r.checkpoint);
  model->eval();
  torch::NoGradGuard no_grad;
  models::GenerateOptions options;
  options.temperature = r.temperature;
  options.seed = r.seed;
  return model->generate(r.prompt, r.num_bytes, options);
}

}  // namespace dptrain::train
