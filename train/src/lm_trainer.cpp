#include "dptrain/train/lm_trainer.h"

#include "file_helpers.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/tokenizer.h"
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

using detail::ends_with;

// Per-sequence losses of `rows` of `data`, padding masked when it has any.
torch::Tensor row_losses(models::GriffinImpl& model,
                         const datasets::TextDataset& data,
                         const std::vector<std::int64_t>& rows,
                         const c10::Device& device) {
  const auto batch = data.batch(rows).to(device);
  return data.padded() ? model.sequence_losses(batch, {}, data.lengths(rows))
                       : model.sequence_losses(batch);
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
  r.tokens = data.num_valid_tokens() - data.size();  // predictions
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
      // Per-token mean: each sequence's mean weighted by its predictions.
      const auto losses = row_losses(*s.model, data, idx, s.loop->device());
      sum += (losses.to(torch::kCPU, torch::kDouble) *
              (data.lengths(idx) - 1).to(torch::kDouble))
                 .sum()
                 .item<double>();
    }
    s.model->train(was_training);
  }
  r.loss = r.tokens > 0 ? sum / static_cast<double>(r.tokens) : kNaN;
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
  const bool user_level = c.privacy_unit == "user";
  if (user_level && train.num_users() == 0) {
    throw std::invalid_argument(
        "--privacy-unit user needs records with a \"user\" field (--dataset "
        "jsonl:FILE)");
  }
  const std::string L = std::to_string(c.sequence_length) + " " + token_word;
  std::string unit = "one sequence of " + L;
  result.adjacency = "add_remove_one_sequence";
  if (train.records()) {
    unit = "one record (cut or padded to " + L + ")";
    result.adjacency = "add_remove_one_record";
  }
  // User level: each user is one unit of `group` rows, their records (a
  // random choice of `group` when they have more) then padding of weight 0.
  const auto by_user = train.sequences_by_user();
  std::int64_t group = 1;
  if (user_level) {
    std::size_t most = 1;
    for (const auto& r : by_user) most = std::max(most, r.size());
    group = std::min<std::int64_t>(c.records_per_user,
                                   static_cast<std::int64_t>(most));
    unit = "one user (the mean over at most " + std::to_string(group) +
           " of their records of " + L + ", clipped once)";
    result.adjacency = "add_remove_one_user";
    result.users = train.num_users();
  }
  result.privacy_unit = unit;
  // Which records of a user with more than `group` are used: not part of
  // the mechanism's privacy (any choice is clipped as one unit), kept in
  // checkpoints for reproducible resumes.
  std::mt19937_64 record_rng(c.seed ? *c.seed ^ 0x5eed5eedULL
                                    : std::random_device{}());

  PrivateTask task;
  task.dataset_size = user_level ? train.num_users() : train.size();
  task.group_size = group;
  task.privacy_unit = unit;
  nlohmann::json identity =
      nlohmann::json{{"task", "lm"},
                     {"sequence_length", c.sequence_length},
                     {"model", config_to_json(s.model->config())},
                     {"freeze_embeddings", c.freeze_embeddings},
                     {"train_blocks", c.train_blocks},
                     {"lora_rank", c.lora_rank},
                     {"lora_alpha", c.lora_alpha},
                     {"lora_layers", c.lora_layers}};
  // Only when not the defaults, so that checkpoints of byte-level
  // sequence runs written before these options existed still resume.
  if (user_level) {
    identity["privacy_unit"] = c.privacy_unit;
    identity["records_per_user"] = group;
  }
  if (token_word != "bytes") identity["tokenizer"] = token_word;
  task.identity_extra = identity.dump();
  {
    // What a resumed run must find again: the same sequences, byte for byte.
    std::uint32_t crc = 0;
    for (std::int64_t start = 0; start < train.size(); start += 4096) {
      std::vector<std::int64_t> idx;
      for (auto i = start; i < std::min(train.size(), start + 4096); ++i)
        idx.push_back(i);
      // Bytes as bytes (the fingerprint of earlier runs); tokens as int32,
      // with the valid lengths and users of records.
      const bool bytes = token_word == "bytes" && !train.records();
      const auto ids =
          train.batch(idx).to(bytes ? torch::kUInt8 : torch::kInt).contiguous();
      crc = crc32_of(ids.data_ptr(),
                     static_cast<std::size_t>(ids.numel() * ids.element_size()),
                     crc);
      if (bytes) continue;
      const auto lengths = train.lengths(idx).to(torch::kInt).contiguous();
      crc = crc32_of(lengths.data_ptr(),
                     static_cast<std::size_t>(lengths.numel() * 4), crc);
      if (train.num_users() > 0) {
        for (const auto i : idx) {
          const auto u = static_cast<std::int64_t>(train.user_of(i));
          crc = crc32_of(&u, sizeof u, crc);
        }
      }
    }
    task.data_fingerprint = nlohmann::json{
        {"sequences", train.size()},
        {"sequence_length", train.sequence_length()},
        {"users", train.num_users()},
        {"crc32", crc}}.dump();
  }
  const auto losses_of = [&](const std::vector<std::int64_t>& rows) {
    return row_losses(*s.model, train, rows, device);
  };
  if (!user_level) {
    task.losses = [&](const std::vector<std::int64_t>& chunk,
                      LoopStats& stats) {
      auto losses = losses_of(chunk);
      torch::NoGradGuard ng;
      stats.loss_sum += losses.sum().item<double>();
      stats.count += static_cast<std::int64_t>(chunk.size());
      return losses;
    };
  } else {
    task.losses = [&](const std::vector<std::int64_t>& chunk,
                      LoopStats& stats) {
      // Rows u·G … u·G+G−1 of user u: m = min(n_u, G) records with weight
      // G/m, then G − m padding rows (a copy of a record) with weight 0, so
      // that the engine's mean over the G rows is the mean over the m.
      const auto layout = user_rows(by_user, chunk, group, record_rng);
      auto row_losses = losses_of(layout.rows);
      const auto w = torch::tensor(layout.weights, torch::kDouble)
                         .to(row_losses.device(), row_losses.scalar_type());
      auto losses = row_losses * w;
      torch::NoGradGuard ng;
      stats.loss_sum +=
          losses.sum().item<double>() / static_cast<double>(group);
      stats.count += static_cast<std::int64_t>(chunk.size());
      return losses;
    };
  }
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
    if (!tokenizer_model.empty())
      out.write("lm_tokenizer", c10::IValue(tokenizer_model));
    std::ostringstream rng;
    rng << record_rng;
    out.write("lm_record_rng", c10::IValue(rng.str()));
  };
  task.load = [&](torch::serialize::InputArchive& in) {
    c10::IValue rng;
    if (in.try_read("lm_record_rng", rng)) {
      std::istringstream state(rng.toStringRef());
      state >> record_rng;
    }
  };

  s.loop->log = log;
  if (user_level) {
    log("privacy unit: " + unit + "; " + std::to_string(train.num_users()) +
        " users with " + std::to_string(train.size()) +
        " records; the guarantee covers adding or removing one user with all "
        "of their records");
  } else {
    log("privacy unit: " + unit + " (" + std::to_string(train.size()) +
        " training sequences); the guarantee covers adding or removing one " +
        (train.records() ? "record" : "sequence"));
  }
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

UserRows user_rows(const std::vector<std::vector<std::int64_t>>& by_user,
                   const std::vector<std::int64_t>& users, std::int64_t group,
                   std::mt19937_64& rng) {
  if (group < 1) {
    throw std::invalid_argument("user_rows: group must be >= 1, got " +
                                std::to_string(group));
  }
  UserRows out;
  out.rows.reserve(users.size() * static_cast<std::size_t>(group));
  out.weights.reserve(out.rows.capacity());
  for (const auto u : users) {
    if (u < 0 || u >= static_cast<std::int64_t>(by_user.size()) ||
        by_user[static_cast<std::size_t>(u)].empty()) {
      throw std::out_of_range("user_rows: user " + std::to_string(u) +
                              " has no records");
    }
    auto records = by_user[static_cast<std::size_t>(u)];
    const auto n = static_cast<std::int64_t>(records.size());
    const auto m = std::min(n, group);
    // A uniform choice of m of the n records (partial Fisher–Yates).
    for (std::int64_t k = 0; k < m && n > group; ++k) {
      std::uniform_int_distribution<std::int64_t> pick(k, n - 1);
      std::swap(records[static_cast<std::size_t>(k)],
                records[static_cast<std::size_t>(pick(rng))]);
    }
    for (std::int64_t k = 0; k < group; ++k) {
      out.rows.push_back(records[static_cast<std::size_t>(k < m ? k : 0)]);
      out.weights.push_back(
          k < m ? static_cast<double>(group) / static_cast<double>(m) : 0.0);
    }
  }
  return out;
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
      {"privacy_unit", r.privacy_unit},
      {"adjacency", r.adjacency},
      {"wall_seconds", r.wall_seconds},
      {"config", nlohmann::json::parse(to_json(c))},
  });
  return j.dump();
}

namespace {

// --dataset / --eval-dataset of --task lm: text:FILE (cut into sequences)
// or jsonl:FILE (one record per line); a bare FILE is text. `flag` names
// the flag in errors; `users` asks for the records' "user" fields (each
// record must have one).
datasets::TextDataset load_lm_text(const std::string& spec,
                                   const std::string& flag,
                                   const TrainConfig& config,
                                   const datasets::Tokenizer& tokenizer,
                                   bool users, std::string& description) {
  const bool jsonl = spec.rfind("jsonl:", 0) == 0;
  const std::string path =
      jsonl ? spec.substr(6)
            : (spec.rfind("text:", 0) == 0 ? spec.substr(5) : spec);
  if (path.empty()) {
    throw std::invalid_argument(
        flag + " must be text:FILE or jsonl:FILE, got '" + spec + "'");
  }
  const auto L = config.sequence_length;
  try {
    if (!jsonl) {
      auto data = config.tokenizer.empty()
                      ? datasets::TextDataset::from_file(path, L)
                      : datasets::TextDataset::from_file(path, L, tokenizer);
      description = std::to_string(data.size()) + " sequences of " +
                    std::to_string(L) + " tokens from " + path;
      return data;
    }
    const auto records = datasets::read_jsonl(path);
    std::vector<std::vector<std::int32_t>> ids;
    std::vector<std::int64_t> user_index;
    std::map<std::string, std::int64_t> user_of;
    std::int64_t cut = 0, dropped = 0;
    for (const auto& rec : records) {
      if (users && !rec.user) {
        throw datasets::DatasetError(
            path, "line " + std::to_string(rec.line) +
                      ": has no \"user\" field (--privacy-unit user needs "
                      "one on every record)");
      }
      std::vector<std::int32_t> r;
      if (tokenizer.bos_id() >= 0) r.push_back(tokenizer.bos_id());
      const auto body = tokenizer.encode(rec.text);
      r.insert(r.end(), body.begin(), body.end());
      if (r.size() < 2) {
        ++dropped;  // nothing to predict
        continue;
      }
      if (static_cast<std::int64_t>(r.size()) > L) ++cut;
      ids.push_back(std::move(r));
      if (users) {
        user_index.push_back(
            user_of
                .emplace(*rec.user, static_cast<std::int64_t>(user_of.size()))
                .first->second);
      }
    }
    if (ids.empty()) {
      throw datasets::DatasetError(path, "no record has 2 or more tokens (" +
                                             std::to_string(dropped) +
                                             " too short)");
    }
    auto data = datasets::TextDataset::from_records(
        ids, L, tokenizer.pad_id(), users ? &user_index : nullptr);
    description = std::to_string(data.size()) + " records from " + path +
                  (users ? " of " + std::to_string(data.num_users()) + " users"
                         : std::string()) +
                  ": " + std::to_string(cut) + " cut to " + std::to_string(L) +
                  " tokens, " + std::to_string(data.size() - cut) +
                  " padded or exact, " + std::to_string(dropped) +
                  " dropped (fewer than 2 tokens)";
    return data;
  } catch (const datasets::DatasetError& e) {
    throw std::invalid_argument(flag + ": " + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(flag + " '" + spec + "': " + e.what());
  }
}

}  // namespace

LmRunResult run_lm_training(const TrainConfig& raw_config) {
  const ValidConfig valid(raw_config);
  const TrainConfig& config = *valid;
  if (config.task != "lm") {
    throw std::invalid_argument("run_lm_training needs --task lm, got --task " +
                                config.task);
  }
  if (config.dataset.rfind("text:", 0) != 0 &&
      config.dataset.rfind("jsonl:", 0) != 0) {
    throw std::invalid_argument(
        "--dataset for --task lm must be text:FILE or jsonl:FILE, got '" +
        config.dataset + "'");
  }
  const bool user_level = config.privacy_unit == "user";
  if (user_level && config.dataset.rfind("jsonl:", 0) != 0) {
    throw std::invalid_argument(
        "--privacy-unit user needs --dataset jsonl:FILE (records with a "
        "\"user\" field), got '" +
        config.dataset + "'");
  }
  check_outputs(config);  // before anything is read or spent
  std::unique_ptr<datasets::Tokenizer> tokenizer;
  try {
    tokenizer = datasets::load_tokenizer(config.tokenizer);
  } catch (const datasets::DatasetError& e) {
    throw std::invalid_argument(std::string("--tokenizer: ") + e.what());
  }
  std::string described;
  const auto all = load_lm_text(config.dataset, "--dataset", config, *tokenizer,
                                user_level, described);
  std::cout << "data: " << described << " (tokenizer " << tokenizer->name()
            << ", vocabulary " << tokenizer->vocab_size() << ")" << std::endl;
  std::optional<datasets::TextDataset> train_part, eval_part;
  std::string eval_split;
  if (!config.eval_dataset.empty()) {
    // A public file: training uses all of --dataset.
    std::string eval_described;
    eval_part = load_lm_text(config.eval_dataset, "--eval-dataset", config,
                             *tokenizer, false, eval_described);
    train_part = all;
    eval_split = "public: --eval-dataset " + config.eval_dataset;
  } else {
    const double fraction =
        config.validation_fraction > 0 ? config.validation_fraction : 0.1;
    // Held out: the file's tail (its last users' records at user level):
    // never trained on, but private data evaluated without noise (privacy
    // invariant 9).
    const auto units = user_level ? all.num_users() : all.size();
    const auto n_eval = std::max<std::int64_t>(
        1, std::llround(fraction * static_cast<double>(units)));
    if (units - n_eval < 1) {
      throw std::invalid_argument(
          "--dataset " + config.dataset + " has " + std::to_string(units) +
          (user_level
               ? " user(s)"
               : " sequence(s) of " + std::to_string(config.sequence_length) +
                     " tokens") +
          "; at least 2 are needed (training and held-out)");
    }
    if (user_level) {
      std::vector<std::int64_t> train_idx, eval_idx;
      for (std::int64_t i = 0; i < all.size(); ++i) {
        (all.user_of(i) < units - n_eval ? train_idx : eval_idx).push_back(i);
      }
      train_part = all.subset(train_idx);
      eval_part = all.subset(eval_idx);
      eval_split = "held-out last " + std::to_string(n_eval) +
                   " users of --dataset (private, not noised)";
    } else {
      train_part = all.slice(0, all.size() - n_eval);
      eval_part = all.slice(all.size() - n_eval, all.size());
      eval_split = "held-out tail of --dataset (private, not noised)";
    }
  }
  const auto& train = *train_part;
  const auto& eval = *eval_part;

  models::GriffinConfig model_config;
  try {
    model_config = models::griffin_config(config.model);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--model: ") + e.what());
  }
  if (!config.tokenizer.empty()) {
    model_config.vocab_size = tokenizer->vocab_size();
  }
  const auto top = std::max(train.max_id(), eval.max_id());
  if (top >= model_config.vocab_size) {
    throw std::invalid_argument("--model " + config.model +
                                " has a vocabulary of " +
                                std::to_string(model_config.vocab_size) +
                                " but the data hold id " + std::to_string(top));
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
  if (!config.tokenizer.empty()) {
    trainer.token_word = "tokens";
    trainer.tokenizer_model = tokenizer->serialized();
  }
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
  summary["tokenizer"] = tokenizer->name();
  summary["vocab_size"] = model_config.vocab_size;
  if (user_level) {
    summary["train_users"] = train.num_users();
    summary["records_per_user"] = config.records_per_user;
  }
  summary["eval_split"] = eval_split;
  run.summary_json = summary.dump();
  return run;
}

namespace {

// Rebuilds the model from an archive holding "lm_model" and "model" (a
// checkpoint's payload or a weights file); `what` names the file in errors.
// `tokenizer_model` receives the stored SentencePiece model ("" if none).
models::Griffin griffin_from_archive(torch::serialize::InputArchive& in,
                                     const std::string& what,
                                     std::string* tokenizer_model = nullptr) {
  if (tokenizer_model != nullptr) {
    c10::IValue stored;
    *tokenizer_model =
        in.try_read("lm_tokenizer", stored) ? stored.toStringRef() : "";
  }
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

models::Griffin checkpoint_model(const std::string& path,
                                 std::string* tokenizer_model) {
  require_regular_file("--checkpoint", path);
  torch::serialize::InputArchive in;
  load_checkpoint(path, in);
  return griffin_from_archive(in, "checkpoint '" + path + "'", tokenizer_model);
}

models::Griffin weights_model(const std::string& path,
                              std::string* tokenizer_model) {
  require_regular_file("--weights", path);
  torch::serialize::InputArchive in;
  try {
    in.load_from(path);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        "--weights '" + path +
        "' is not a LibTorch archive: " + e.what_without_backtrace());
  }
  return griffin_from_archive(in, "weights file '" + path + "'",
                              tokenizer_model);
}

}  // namespace

models::Griffin load_lm_checkpoint(const std::string& path) {
  return checkpoint_model(path, nullptr);
}

models::Griffin load_lm_weights(const std::string& path) {
  return weights_model(path, nullptr);
}

void save_lm_weights(models::GriffinImpl& model, const std::string& path,
                     const std::string& tokenizer_model) {
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
    save_lm_weights(*merged, path, tokenizer_model);
    return;
  }
  torch::serialize::OutputArchive out;
  out.write("kind", c10::IValue(std::string("dptrain language-model weights")));
  out.write("lm_model", c10::IValue(config_to_json(model.config()).dump()));
  if (!tokenizer_model.empty())
    out.write("lm_tokenizer", c10::IValue(tokenizer_model));
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
  save_lm_weights(*s.model, path, tokenizer_model);
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
  if (r.num_tokens < 0) {
    throw std::invalid_argument("--num-tokens must be >= 0, got " +
                                std::to_string(r.num_tokens));
  }
  if (!std::isfinite(r.temperature) || r.temperature < 0) {
    std::ostringstream v;
    v << r.temperature;
    throw std::invalid_argument(
        "--temperature must be >= 0 (0 = greedy), got " + v.str());
  }
  std::string stored;
  auto model = r.weights.empty() ? checkpoint_model(r.checkpoint, &stored)
                                 : weights_model(r.weights, &stored);
  model->eval();
  torch::NoGradGuard no_grad;
  models::GenerateOptions options;
  options.temperature = r.temperature;
  options.seed = r.seed;
  const auto vocab = model->config().vocab_size;
  if (stored.empty() && r.tokenizer.empty()) {
    // A byte model: bytes only (ids >= 256 of a larger vocabulary are never
    // sampled).
    std::function<void(char)> on_byte;
    if (r.on_text) on_byte = [&](char c) { r.on_text(std::string(1, c)); };
    return model->generate(r.prompt, r.num_tokens, options, on_byte);
  }
  std::unique_ptr<datasets::Tokenizer> tokenizer;
  try {
    tokenizer = !r.tokenizer.empty()
                    ? datasets::load_sentencepiece(r.tokenizer)
                    : datasets::sentencepiece_from_bytes(
                          stored, "the tokenizer stored with the model");
  } catch (const datasets::DatasetError& e) {
    throw std::invalid_argument(std::string("--tokenizer: ") + e.what());
  }
  if (tokenizer->vocab_size() != vocab) {
    throw std::invalid_argument("--tokenizer has a vocabulary of " +
                                std::to_string(tokenizer->vocab_size()) +
                                " but the model's is " + std::to_string(vocab));
  }
  const auto body = tokenizer->encode(r.prompt);
  std::vector<std::int64_t> prompt;
  if (tokenizer->bos_id() >= 0) prompt.push_back(tokenizer->bos_id());
  prompt.insert(prompt.end(), body.begin(), body.end());
  // The continuation is the decoded prompt + generated ids past the decoded
  // prompt (decoding the new ids alone would drop a piece's leading space).
  // Streamed as it decodes stably: SentencePiece may join pieces.
  std::vector<std::int32_t> ids(body.begin(), body.end());
  const std::string prompt_text = tokenizer->decode(ids);
  std::string shown = prompt_text;
  const auto emit_new = [&] {
    const auto text = tokenizer->decode(ids);
    if (text.size() > shown.size() &&
        text.compare(0, shown.size(), shown) == 0) {
      if (r.on_text) r.on_text(text.substr(shown.size()));
      shown = text;
    }
  };
  const auto on_token = [&](std::int64_t id) {
    if (id == tokenizer->eos_id()) return;
    ids.push_back(static_cast<std::int32_t>(id));
    emit_new();
  };
  model->generate_tokens(prompt, r.num_tokens, options, on_token,
                         tokenizer->eos_id());
  emit_new();
  const auto all = tokenizer->decode(ids);
  const auto text =
      all.compare(0, prompt_text.size(), prompt_text) == 0
          ? all.substr(prompt_text.size())
          : tokenizer->decode(std::vector<std::int32_t>(
                ids.begin() + static_cast<std::ptrdiff_t>(body.size()),
                ids.end()));
  return text;
}

}  // namespace dptrain::train
