#include "dptrain/train/lm_trainer.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "dptrain/models/fine_tuning.h"
#include "dptrain/models/safetensors.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/optimization.h"
#include "dptrain/train/outputs.h"
#include "dptrain/train/private_loop.h"
#include "json_number.h"

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

TrainConfig with_lm_task(TrainConfig config) {
  config.task = "lm";
  return config;
}

}  // namespace

struct LmTrainer::State {
  models::Griffin model{nullptr};
  std::unique_ptr<PrivateLoop> loop;
};

LmTrainer::LmTrainer(models::Griffin model, TrainConfig config)
    : LmTrainer(std::move(model),
                ValidConfig(with_lm_task(std::move(config)))) {}

LmTrainer::LmTrainer(models::Griffin model, ValidConfig valid)
    : state_(std::make_unique<State>()) {
  if (!model) throw std::invalid_argument("LmTrainer: model is null");
  const TrainConfig& config = *valid;
  if (config.task != "lm") {
    throw std::invalid_argument("LmTrainer needs --task lm, got --task " +
                                config.task);
  }
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
  if (config.lora_rank > 0) {
    try {
      const auto adapted = models::add_lora(
          *model, {config.lora_rank, config.lora_alpha, config.lora_layers});
      // Counted once per tensor: the decoder shares the embedding's weight.
      std::int64_t trainable = 0;
      std::int64_t frozen = 0;
      std::set<const void*> seen;
      for (const auto& p : model->parameters()) {
        if (!seen.insert(p.data_ptr()).second) continue;
        (p.requires_grad() ? trainable : frozen) += p.numel();
      }
      std::cout << "LoRA: rank " << config.lora_rank << ", alpha "
                << (config.lora_alpha > 0
                        ? config.lora_alpha
                        : static_cast<double>(config.lora_rank))
                << ", on " << adapted.size() << " Linear layers ("
                << config.lora_layers << "); trainable parameters " << trainable
                << " (the adapters); the base's " << frozen
                << " are frozen: no per-example work, no noise" << std::endl;
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--lora-rank/--lora-layers: ") +
                                  e.what());
    }
  }
  state_->model = model;
  state_->loop = std::make_unique<PrivateLoop>(
      std::static_pointer_cast<torch::nn::Module>(model.ptr()),
      std::move(valid));
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
  const AveragedParameters held(optimization, *s.model,
                                use_ema ? Average::kEma : Average::kNone);
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
      {"train_blocks", c.train_blocks},
      {"lora_rank", c.lora_rank},
      {"lora_alpha", c.lora_alpha},
      {"lora_layers",
       c.lora_layers}}.dump();
  {
    // What a resumed run must find again: the same sequences, byte for byte.
    std::uint32_t crc = 0;
    for (std::int64_t start = 0; start < train.size(); start += 4096) {
      std::vector<std::int64_t> idx;
      for (auto i = start; i < std::min(train.size(), start + 4096); ++i)
        idx.push_back(i);
      const auto bytes = train.batch(idx).to(torch::kUInt8).contiguous();
      crc = crc32_of(bytes.data_ptr(), static_cast<std::size_t>(bytes.numel()),
                     crc);
    }
    task.data_fingerprint = nlohmann::json{
        {"sequences", train.size()},
        {"sequence_length", train.sequence_length()},
        {"crc32", crc}}.dump();
  }
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
      line << ", " << eval_label << " loss " << format_fixed(rec.eval.loss)
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
    log(eval_label + " before training: loss " +
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
  nlohmann::json j = nlohmann::json::parse(privacy_summary_json(r, c));
  j.update({
      {"task", "lm"},
      {"perplexity", has_eval ? nan_to_null(r.eval.perplexity) : nullptr},
      {"ema_perplexity",
       has_ema ? nan_to_null(r.ema_eval.perplexity) : nullptr},
      {"initial_perplexity", r.initial_eval.sequences > 0
                                 ? nan_to_null(r.initial_eval.perplexity)
                                 : nullptr},
      {"eval_loss", has_eval ? nan_to_null(r.eval.loss) : nullptr},
      {"eval_tokens", r.eval.tokens},
      {"privacy_unit",
       "one sequence of " + std::to_string(c.sequence_length) + " bytes"},
      {"adjacency", "add_remove_one_sequence"},
      {"wall_seconds", r.wall_seconds},
      {"config", nlohmann::json::parse(to_json(c))},
  });
  return j.dump();
}

LmRunResult run_lm_training(const TrainConfig& raw_config) {
  const ValidConfig valid(raw_config);
  const TrainConfig& config = *valid;
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
  check_outputs(config);  // before anything is read or spent
  const auto path = config.dataset.substr(prefix.size());
  const auto all =
      datasets::TextDataset::from_file(path, config.sequence_length);
  std::optional<datasets::TextDataset> train_part, eval_part;
  std::string eval_split;
  if (!config.eval_dataset.empty()) {
    // A public file: training uses all of --dataset.
    std::string eval_path = config.eval_dataset;
    if (eval_path.rfind(prefix, 0) == 0)
      eval_path = eval_path.substr(prefix.size());
    try {
      eval_part =
          datasets::TextDataset::from_file(eval_path, config.sequence_length);
    } catch (const std::exception& e) {
      throw std::invalid_argument("--eval-dataset: " + std::string(e.what()));
    }
    if (eval_part->size() < 1) {
      throw std::invalid_argument(
          "--eval-dataset '" + config.eval_dataset + "' holds no sequence of " +
          std::to_string(config.sequence_length) + " bytes");
    }
    train_part = all;
    eval_split = "public: --eval-dataset " + config.eval_dataset;
  } else {
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
    // The held-out text is the file's tail: contiguous, never trained on,
    // but private data evaluated without noise (privacy invariant 9).
    train_part = all.slice(0, all.size() - n_eval);
    eval_part = all.slice(all.size() - n_eval, all.size());
    eval_split = "held-out tail of --dataset (private, not noised)";
  }
  const auto& train = *train_part;
  const auto& eval = *eval_part;

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
  LmTrainer trainer(model, valid);
  trainer.eval_label = eval_split;
  LmRunResult run;
  run.fit = trainer.fit(train, &eval);
  if (!config.save_weights.empty()) {
    trainer.save_weights(config.save_weights);
    trainer.save_weights(ema_weights_path(config.save_weights),
                         /*use_ema=*/true);
  }
  auto summary = nlohmann::json::parse(lm_summary_json(run.fit, config));
  std::int64_t trainable = 0;
  std::set<const void*> seen;
  for (const auto& p : model->parameters()) {
    if (p.requires_grad() && seen.insert(p.data_ptr()).second)
      trainable += p.numel();
  }
  summary["trainable_parameters"] = trainable;
  if (config.lora_rank > 0) {
    summary["weights_saved"] = "merged: base + (alpha/rank)·B·A, no adapters";
  }
  summary["train_sequences"] = train.size();
  summary["eval_sequences"] = eval.size();
  summary["eval_split"] = eval_split;
  run.summary_json = summary.dump();
  return run;
}

namespace {

// Rebuilds the model from an archive holding "lm_model" and "model" (a
// checkpoint's payload or a weights file); `what` names the file in errors.
models::Griffin griffin_from_archive(torch::serialize::InputArchive& in,
                                     const std::string& what) {
  c10::IValue value;
  if (!in.try_read("lm_model", value)) {
    throw std::runtime_error(what +
                             " is not a language model (written by --task lm)");
  }
  models::GriffinConfig config;
  try {
    config = config_from_json(nlohmann::json::parse(value.toStringRef()));
  } catch (const std::exception& e) {
    throw std::runtime_error(what + ": bad model config: " + e.what());
  }
  auto model = models::Griffin(config);
  try {
    torch::serialize::InputArchive model_in;
    in.read("model", model_in);
    model->load(model_in);
  } catch (const std::exception& e) {
    throw std::runtime_error(what + ": cannot load the model: " + e.what());
  }
  return model;
}

void require_regular_file(const std::string& flag, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error(flag + " '" + path + "': " +
                             (std::filesystem::exists(path, ec)
                                  ? "not a regular file"
                                  : "no such file"));
  }
}

}  // namespace

models::Griffin load_lm_checkpoint(const std::string& path) {
  require_regular_file("--checkpoint", path);
  torch::serialize::InputArchive in;
  load_checkpoint(path, in);
  return griffin_from_archive(in, "checkpoint '" + path + "'");
}

models::Griffin load_lm_weights(const std::string& path) {
  require_regular_file("--weights", path);
  torch::serialize::InputArchive in;
  try {
    in.load_from(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "--weights '" + path +
        "' is not a LibTorch archive: " + e.what_without_backtrace());
  }
  return griffin_from_archive(in, "weights file '" + path + "'");
}

void save_lm_weights(models::GriffinImpl& model, const std::string& path) {
  bool lora = false;
  for (const auto& p : model.named_parameters(true)) {
    lora = lora || p.key().find("lora_") != std::string::npos;
  }
  if (lora) {
    // The release artefact is the merged model: plain Griffin weights that
    // `generate` and --init-checkpoint take without knowing of LoRA.
    auto merged = models::Griffin(model.config());
    merged->to(model.parameters().front().device(),
               model.parameters().front().scalar_type());
    models::copy_merged_lora(model, *merged);
    save_lm_weights(*merged, path);
    return;
  }
  torch::serialize::OutputArchive out;
  out.write("kind", c10::IValue(std::string("dptrain language-model weights")));
  out.write("lm_model", c10::IValue(config_to_json(model.config()).dump()));
  torch::serialize::OutputArchive model_out;
  model.save(model_out);
  out.write("model", model_out);
  std::ostringstream bytes(std::ios::binary);
  out.save_to(bytes);
  write_file_atomically(path, bytes.str());
}

bool LmTrainer::save_weights(const std::string& path, bool use_ema) {
  auto& s = *state_;
  const AveragedParameters held(s.loop->optimization(), *s.model,
                                use_ema ? Average::kEma : Average::kNone);
  if (use_ema && !held.active()) return false;
  save_lm_weights(*s.model, path);
  return true;
}

std::string generate_from_checkpoint(const GenerateRequest& r) {
  if (r.checkpoint.empty() == r.weights.empty()) {
    throw std::invalid_argument(
        "give one of --weights (a file written by --save-weights, the release "
        "artefact) and "
        "--checkpoint (private training state)");
  }
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
  auto model = r.weights.empty() ? load_lm_checkpoint(r.checkpoint)
                                 : load_lm_weights(r.weights);
  model->eval();
  torch::NoGradGuard no_grad;
  models::GenerateOptions options;
  options.temperature = r.temperature;
  options.seed = r.seed;
  return model->generate(r.prompt, r.num_bytes, options, r.on_byte);
}

}  // namespace dptrain::train
