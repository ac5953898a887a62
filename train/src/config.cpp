#include "dptrain/train/config.h"

#include <nlohmann/json.hpp>
#include <toml.hpp>

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>

namespace dptrain::train {
namespace {

using Setter = std::function<void(const toml::value&, TrainConfig&)>;

template <typename T>
std::string str(const T& v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

double as_double(const toml::value& v) {
  if (v.is_floating()) return v.as_floating();
  if (v.is_integer()) return static_cast<double>(v.as_integer());
  throw std::invalid_argument("expected a number");
}
std::int64_t as_int(const toml::value& v) {
  if (v.is_integer()) return v.as_integer();
  throw std::invalid_argument("expected an integer");
}
bool as_bool(const toml::value& v) {
  if (v.is_boolean()) return v.as_boolean();
  throw std::invalid_argument("expected true or false");
}
std::string as_string(const toml::value& v) {
  if (v.is_string()) return v.as_string().str;
  throw std::invalid_argument("expected a string");
}
std::vector<std::int64_t> as_int_list(const toml::value& v) {
  if (!v.is_array()) throw std::invalid_argument("expected an array of integers");
  std::vector<std::int64_t> out;
  for (const auto& x : v.as_array()) out.push_back(as_int(x));
  return out;
}

#define DPTRAIN_KEY(name, field, conv) \
  {name, [](const toml::value& v, TrainConfig& c) { c.field = conv(v); }}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      DPTRAIN_KEY("task", task, as_string),
      DPTRAIN_KEY("dataset", dataset, as_string),
      DPTRAIN_KEY("validation-fraction", validation_fraction, as_double),
      DPTRAIN_KEY("model", model, as_string),
      DPTRAIN_KEY("sequence-length", sequence_length, as_int),
      DPTRAIN_KEY("freeze-embeddings", freeze_embeddings, as_bool),
      DPTRAIN_KEY("train-blocks", train_blocks, as_int_list),
      DPTRAIN_KEY("init-checkpoint", init_checkpoint, as_string),
      DPTRAIN_KEY("reset-classifier", reset_classifier, as_bool),
      DPTRAIN_KEY("trainable", trainable, as_string),
      DPTRAIN_KEY("classes", classes, as_int_list),
      DPTRAIN_KEY("save-weights", save_weights, as_string),
      DPTRAIN_KEY("eval-dataset", eval_dataset, as_string),
      DPTRAIN_KEY("target-epsilon", target_epsilon, as_double),
      DPTRAIN_KEY("delta", delta, as_double),
      DPTRAIN_KEY("noise-multiplier", noise_multiplier, as_double),
      DPTRAIN_KEY("max-grad-norm", max_grad_norm, as_double),
      DPTRAIN_KEY("normalize-clipped", normalize_clipped, as_bool),
      DPTRAIN_KEY("clipping", clipping, as_string),
      DPTRAIN_KEY("accountant", accountant, as_string),
      DPTRAIN_KEY("sampler", sampler, as_string),
      DPTRAIN_KEY("batch-size", batch_size, as_int),
      DPTRAIN_KEY("max-physical-batch-size", max_physical_batch_size, as_int),
      DPTRAIN_KEY("epochs", epochs, as_int),
      DPTRAIN_KEY("steps", steps, as_int),
      DPTRAIN_KEY("lr", lr, as_double),
      DPTRAIN_KEY("optimizer", optimizer, as_string),
      DPTRAIN_KEY("momentum", momentum, as_double),
      DPTRAIN_KEY("nesterov", nesterov, as_bool),
      DPTRAIN_KEY("weight-decay", weight_decay, as_double),
      DPTRAIN_KEY("lr-schedule", lr_schedule, as_string),
      DPTRAIN_KEY("warmup-steps", warmup_steps, as_int),
      DPTRAIN_KEY("augmult", augmult, as_int),
      DPTRAIN_KEY("ema-decay", ema_decay, as_double),
      DPTRAIN_KEY("polyak-start", polyak_start, as_int),
      {"seed",
       [](const toml::value& v, TrainConfig& c) {
         const auto s = as_int(v);
         if (s < 0) throw std::invalid_argument("expected a non-negative integer");
         c.seed = static_cast<std::uint64_t>(s);
       }},
      DPTRAIN_KEY("device", device, as_string),
      DPTRAIN_KEY("checkpoint", checkpoint, as_string),
      DPTRAIN_KEY("checkpoint-every", checkpoint_every, as_int),
      DPTRAIN_KEY("resume", resume, as_bool),
      DPTRAIN_KEY("overwrite", overwrite, as_bool),
      DPTRAIN_KEY("metrics", metrics, as_string),
      DPTRAIN_KEY("summary", summary, as_string),
      DPTRAIN_KEY("diagnostics", diagnostics, as_bool),
  };
  return table;
}
#undef DPTRAIN_KEY

void require(bool ok, const std::string& flag, const std::string& what,
             const std::string& value) {
  if (!ok) {
    throw std::invalid_argument("--" + flag + " " + what + ", got " + value);
  }
}

void require_one_of(const std::string& flag, const std::string& value,
                    std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (value == a) return;
  }
  std::string list;
  for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  throw std::invalid_argument("--" + flag + " must be one of " + list + ", got '" +
                              value + "'");
}

}  // namespace

void TrainConfig::validate() const {
  require_one_of("task", task, {"classify", "lm"});
  require(sequence_length >= 2, "sequence-length", "must be >= 2", str(sequence_length));
  for (const auto b : train_blocks) {
    require(b >= 0, "train-blocks", "must list block indices >= 0", str(b));
  }
  if (task != "lm") {
    if (freeze_embeddings || !train_blocks.empty()) {
      throw std::invalid_argument(
          "--freeze-embeddings and --train-blocks need --task lm, got --task " + task);
    }
  } else {
    if (augmult > 0) {
      throw std::invalid_argument(
          "--augmult is for images; --task lm has no augmentation, got " + str(augmult));
    }
    if (reset_classifier || trainable != "all" || !classes.empty()) {
      throw std::invalid_argument(
          "--reset-classifier, --trainable and --classes need --task classify, got --task lm");
    }
  }
  if (task != "lm" && !eval_dataset.empty()) {
    throw std::invalid_argument("--eval-dataset is for --task lm, got --task " + task);
  }
  if (reset_classifier && init_checkpoint.empty()) {
    throw std::invalid_argument(
        "--reset-classifier needs --init-checkpoint (a fresh model's head is already new)");
  }
  require(!trainable.empty(), "trainable", "must be all, classifier or a regex", "''");
  for (std::size_t i = 0; i < classes.size(); ++i) {
    require(classes[i] >= 0, "classes", "must list class labels >= 0", str(classes[i]));
    for (std::size_t j = 0; j < i; ++j) {
      require(classes[j] != classes[i], "classes", "must not repeat a class", str(classes[i]));
    }
  }
  require(validation_fraction >= 0.0 && validation_fraction < 1.0, "validation-fraction",
          "must be in [0, 1)", str(validation_fraction));
  require(std::isfinite(target_epsilon) && target_epsilon >= 0.0, "target-epsilon",
          "must be > 0 (or 0 to give --noise-multiplier instead)", str(target_epsilon));
  require(std::isfinite(delta) && delta > 0.0 && delta < 1.0, "delta", "must be in (0, 1)",
          str(delta));
  require(std::isfinite(noise_multiplier) && noise_multiplier >= 0.0, "noise-multiplier",
          "must be > 0", str(noise_multiplier));
  // Far past any useful value, and σ·C·z must stay finite in float.
  require(noise_multiplier <= kMaxNoiseMultiplier, "noise-multiplier",
          "must be at most " + str(kMaxNoiseMultiplier), str(noise_multiplier));
  if (target_epsilon == 0.0 && noise_multiplier == 0.0) {
    throw std::invalid_argument(
        "give --target-epsilon > 0 (noise is calibrated) or --noise-multiplier > 0 (epsilon is "
        "reported); both are 0 (a noise multiplier of 0 would add no noise)");
  }
  if (target_epsilon > 0.0 && noise_multiplier > 0.0) {
    throw std::invalid_argument(
        "give only one of --target-epsilon and --noise-multiplier, got both (" +
        str(target_epsilon) + " and " + str(noise_multiplier) + ")");
  }
  require(std::isfinite(max_grad_norm) && max_grad_norm > 0.0, "max-grad-norm", "must be > 0",
          str(max_grad_norm));
  require(max_grad_norm <= kMaxGradNorm, "max-grad-norm", "must be at most " + str(kMaxGradNorm),
          str(max_grad_norm));
  require_one_of("clipping", clipping, {"flat", "per-layer"});
  require_one_of("accountant", accountant, {"rdp", "prv"});
  require_one_of("sampler", sampler, {"poisson", "shuffle"});
  require(batch_size > 0, "batch-size", "must be > 0", str(batch_size));
  require(max_physical_batch_size > 0, "max-physical-batch-size", "must be > 0",
          str(max_physical_batch_size));
  require(epochs >= 0 && epochs <= kMaxEpochs, "epochs",
          "must be in [0, " + str(kMaxEpochs) + "]", str(epochs));
  require(steps >= 0 && steps <= kMaxSteps, "steps", "must be in [0, " + str(kMaxSteps) + "]",
          str(steps));
  if ((epochs > 0) == (steps > 0)) {
    throw std::invalid_argument("give exactly one of --epochs and --steps (got epochs=" +
                                str(epochs) + ", steps=" + str(steps) + ")");
  }
  require(std::isfinite(lr) && lr > 0.0, "lr", "must be > 0", str(lr));
  require_one_of("optimizer", optimizer, {"sgd", "adam", "adamw"});
  require(momentum >= 0.0 && momentum < 1.0, "momentum", "must be in [0, 1)", str(momentum));
  require(weight_decay >= 0.0, "weight-decay", "must be >= 0", str(weight_decay));
  require_one_of("lr-schedule", lr_schedule, {"constant", "cosine"});
  require(warmup_steps >= 0, "warmup-steps", "must be >= 0", str(warmup_steps));
  require(augmult >= 0, "augmult", "must be >= 0", str(augmult));
  require(ema_decay >= 0.0 && ema_decay < 1.0, "ema-decay", "must be in [0, 1)",
          str(ema_decay));
  require(polyak_start >= -1, "polyak-start", "must be a step >= 0, or -1 for off",
          str(polyak_start));
  require(checkpoint_every >= 0, "checkpoint-every", "must be >= 0", str(checkpoint_every));
  if (resume && checkpoint.empty()) {
    throw std::invalid_argument("--resume needs --checkpoint PATH");
  }
  if (resume && overwrite) {
    throw std::invalid_argument(
        "give only one of --resume (continue the run in --checkpoint) and --overwrite "
        "(discard it)");
  }
}

void apply_toml_file(const std::string& path, TrainConfig& config) {
  // toml::parse sizes its buffer by seeking to the end: a folder reads as a
  // huge file (std::bad_alloc), a pipe as none. Take regular files only.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) {
    throw std::invalid_argument("config '" + path + "': no such file");
  }
  if (!std::filesystem::is_regular_file(status)) {
    throw std::invalid_argument("config '" + path + "': not a regular file" +
                                (std::filesystem::is_directory(status)
                                     ? std::string(" (a folder)")
                                     : std::string()));
  }
  toml::value root;
  try {
    root = toml::parse(path);
  } catch (const std::exception& e) {
    throw std::invalid_argument("config '" + path + "': " + e.what());
  }
  if (!root.is_table()) {
    throw std::invalid_argument("config '" + path + "': expected a table of keys");
  }
  for (const auto& [raw_key, value] : root.as_table()) {
    std::string key = raw_key;
    std::replace(key.begin(), key.end(), '_', '-');
    const auto it = setters().find(key);
    if (it == setters().end()) {
      throw std::invalid_argument("config '" + path + "': unknown key '" + raw_key + "'");
    }
    try {
      it->second(value, config);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("config '" + path + "': key '" + raw_key + "': " + e.what());
    }
  }
}

std::string to_json(const TrainConfig& c) {
  nlohmann::json j = {
      {"task", c.task},
      {"dataset", c.dataset},
      {"validation_fraction", c.validation_fraction},
      {"model", c.model},
      {"sequence_length", c.sequence_length},
      {"freeze_embeddings", c.freeze_embeddings},
      {"train_blocks", c.train_blocks},
      {"init_checkpoint", c.init_checkpoint},
      {"reset_classifier", c.reset_classifier},
      {"trainable", c.trainable},
      {"classes", c.classes},
      {"save_weights", c.save_weights},
      {"eval_dataset", c.eval_dataset},
      {"target_epsilon", c.target_epsilon},
      {"delta", c.delta},
      {"noise_multiplier", c.noise_multiplier},
      {"max_grad_norm", c.max_grad_norm},
      {"normalize_clipped", c.normalize_clipped},
      {"clipping", c.clipping},
      {"accountant", c.accountant},
      {"sampler", c.sampler},
      {"batch_size", c.batch_size},
      {"max_physical_batch_size", c.max_physical_batch_size},
      {"epochs", c.epochs},
      {"steps", c.steps},
      {"lr", c.lr},
      {"optimizer", c.optimizer},
      {"momentum", c.momentum},
      {"nesterov", c.nesterov},
      {"weight_decay", c.weight_decay},
      {"lr_schedule", c.lr_schedule},
      {"warmup_steps", c.warmup_steps},
      {"augmult", c.augmult},
      {"ema_decay", c.ema_decay},
      {"polyak_start", c.polyak_start},
      {"seed", c.seed ? nlohmann::json(*c.seed) : nlohmann::json(nullptr)},
      {"device", c.device},
      {"checkpoint", c.checkpoint},
      {"checkpoint_every", c.checkpoint_every},
      {"resume", c.resume},
      {"overwrite", c.overwrite},
      {"metrics", c.metrics},
      {"summary", c.summary},
      {"diagnostics", c.diagnostics},
  };
  return j.dump();
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const auto& [k, v] : setters()) keys.push_back(k);
  return keys;
}

}  // namespace dptrain::train
