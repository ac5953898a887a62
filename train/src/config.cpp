#include "dptrain/train/config.h"

#include <nlohmann/json.hpp>
#include <toml.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace dptrain::train {
namespace {

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
  // toml::get works with toml11 3.x (Debian 12) and 4.x (Debian 13), whose
  // as_string() returns a std::string rather than a struct with .str.
  if (v.is_string()) return toml::get<std::string>(v);
  throw std::invalid_argument("expected a string");
}
std::vector<std::int64_t> as_int_list(const toml::value& v) {
  if (!v.is_array())
    throw std::invalid_argument("expected an array of integers");
  std::vector<std::int64_t> out;
  for (const auto& x : v.as_array()) out.push_back(as_int(x));
  return out;
}

// The TOML value of a key, as the member's type.
struct FromToml {
  const toml::value& v;
  TrainConfig& c;
  void operator()(std::string TrainConfig::*m) const { c.*m = as_string(v); }
  void operator()(double TrainConfig::*m) const { c.*m = as_double(v); }
  void operator()(std::int64_t TrainConfig::*m) const { c.*m = as_int(v); }
  void operator()(bool TrainConfig::*m) const { c.*m = as_bool(v); }
  void operator()(std::vector<std::int64_t> TrainConfig::*m) const {
    c.*m = as_int_list(v);
  }
  void operator()(std::optional<std::uint64_t> TrainConfig::*m) const {
    const auto s = as_int(v);
    if (s < 0) throw std::invalid_argument("expected a non-negative integer");
    c.*m = static_cast<std::uint64_t>(s);
  }
};

const ConfigField* find_field(const std::string& kebab_key) {
  for (const auto& f : config_fields()) {
    if (kebab_key == f.key) return &f;
  }
  return nullptr;
}

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
  for (const char* a : allowed)
    list += (list.empty() ? "" : ", ") + std::string(a);
  throw std::invalid_argument("--" + flag + " must be one of " + list +
                              ", got '" + value + "'");
}

// The diffusion fields: in range, and left at their defaults by the other
// tasks (a value there would be silently ignored); --task diffusion refuses
// what only a classifier has.
void validate_diffusion_fields(const TrainConfig& c) {
  const TrainConfig d;
  if (c.task != "diffusion") {
    const std::pair<bool, const char*> given[] = {
        {c.noise_multiplicity != d.noise_multiplicity, "noise-multiplicity"},
        {c.label_dropout != d.label_dropout, "label-dropout"},
        {c.edm_p_mean != d.edm_p_mean, "edm-p-mean"},
        {c.edm_p_std != d.edm_p_std, "edm-p-std"},
        {c.sigma_data != d.sigma_data, "sigma-data"},
        {c.diffusion_objective != d.diffusion_objective, "diffusion-objective"},
        {c.sigma_distribution != d.sigma_distribution, "sigma-distribution"},
        {c.high_noise_weight != d.high_noise_weight, "high-noise-weight"},
    };
    for (const auto& [set, flag] : given) {
      if (set) {
        throw std::invalid_argument(std::string("--") + flag +
                                    " needs --task diffusion, got --task " +
                                    c.task);
      }
    }
    return;
  }
  require(c.noise_multiplicity >= 1 && c.noise_multiplicity <= 4096,
          "noise-multiplicity", "must be in [1, 4096]",
          str(c.noise_multiplicity));
  require(std::isfinite(c.label_dropout) && c.label_dropout >= 0.0 &&
              c.label_dropout <= 1.0,
          "label-dropout", "must be in [0, 1]", str(c.label_dropout));
  require(std::isfinite(c.edm_p_mean), "edm-p-mean", "must be finite",
          str(c.edm_p_mean));
  require(std::isfinite(c.edm_p_std) && c.edm_p_std > 0.0, "edm-p-std",
          "must be > 0", str(c.edm_p_std));
  require(std::isfinite(c.sigma_data) && c.sigma_data > 0.0, "sigma-data",
          "must be > 0", str(c.sigma_data));
  require_one_of("diffusion-objective", c.diffusion_objective, {"edm", "v"});
  require_one_of("sigma-distribution", c.sigma_distribution,
                 {"log-normal", "high-noise-mix", "cosine"});
  require(std::isfinite(c.high_noise_weight) && c.high_noise_weight >= 0.0 &&
              c.high_noise_weight <= 1.0,
          "high-noise-weight", "must be in [0, 1]", str(c.high_noise_weight));
  if (c.high_noise_weight != d.high_noise_weight &&
      c.sigma_distribution != "high-noise-mix") {
    throw std::invalid_argument(
        "--high-noise-weight needs --sigma-distribution high-noise-mix, got " +
        c.sigma_distribution);
  }
  if (c.validation_fraction > 0) {
    throw std::invalid_argument(
        "--validation-fraction needs --task classify (a diffusion run "
        "evaluates nothing on held-out data), got " +
        str(c.validation_fraction));
  }
}

}  // namespace

void TrainConfig::validate() const {
  require_one_of("task", task, {"classify", "lm", "diffusion"});
  validate_diffusion_fields(*this);
  require(sequence_length >= 2, "sequence-length", "must be >= 2",
          str(sequence_length));
  for (const auto b : train_blocks) {
    require(b >= 0, "train-blocks", "must list block indices >= 0", str(b));
  }
  require_one_of("privacy-unit", privacy_unit, {"record", "user"});
  require(records_per_user >= 1 && records_per_user <= 4096, "records-per-user",
          "must be in [1, 4096]", str(records_per_user));
  if (task != "lm" && (privacy_unit != "record" || !tokenizer.empty())) {
    throw std::invalid_argument(
        "--privacy-unit user and --tokenizer need --task lm, got --task " +
        task);
  }
  require(lora_rank >= 0 && lora_rank <= 4096, "lora-rank",
          "must be in [0, 4096] (0 = no LoRA)", str(lora_rank));
  require(std::isfinite(lora_alpha) && lora_alpha >= 0.0, "lora-alpha",
          "must be finite and >= 0 (0 = the rank)", str(lora_alpha));
  if (lora_rank > 0) {
    if (task != "lm") {
      throw std::invalid_argument("--lora-rank needs --task lm, got --task " +
                                  task);
    }
    if (freeze_embeddings || !train_blocks.empty()) {
      throw std::invalid_argument(
          "--lora-rank trains the adapters only: it does not combine with "
          "--freeze-embeddings or --train-blocks");
    }
    try {
      std::regex check(lora_layers, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw std::invalid_argument("--lora-layers '" + lora_layers +
                                  "' is not a valid regex: " + e.what());
    }
  }
  if (task != "lm") {
    if (freeze_embeddings || !train_blocks.empty()) {
      throw std::invalid_argument(
          "--freeze-embeddings and --train-blocks need --task lm, got --task " +
          task);
    }
  } else {
    if (augmult > 0) {
      throw std::invalid_argument(
          "--augmult is for images; --task lm has no augmentation, got " +
          str(augmult));
    }
    if (reset_classifier || trainable != "all" || !classes.empty()) {
      throw std::invalid_argument(
          "--reset-classifier, --trainable and --classes need --task classify, "
          "got --task lm");
    }
  }
  if (task != "lm" && !eval_dataset.empty()) {
    throw std::invalid_argument("--eval-dataset is for --task lm, got --task " +
                                task);
  }
  if (reset_classifier && init_checkpoint.empty()) {
    throw std::invalid_argument(
        "--reset-classifier needs --init-checkpoint (a fresh model's head is "
        "already new)");
  }
  require(!trainable.empty(), "trainable", "must be all, classifier or a regex",
          "''");
  if (!image_size.empty()) {
    require(image_size.size() == 2 && image_size[0] >= 1 && image_size[1] >= 1,
            "image-size", "must be H,W with both >= 1", [&] {
              std::string v;
              for (auto x : image_size) v += (v.empty() ? "" : ",") + str(x);
              return v;
            }());
  }
  for (std::size_t i = 0; i < classes.size(); ++i) {
    require(classes[i] >= 0, "classes", "must list class labels >= 0",
            str(classes[i]));
    for (std::size_t j = 0; j < i; ++j) {
      require(classes[j] != classes[i], "classes", "must not repeat a class",
              str(classes[i]));
    }
  }
  require(validation_fraction >= 0.0 && validation_fraction < 1.0,
          "validation-fraction", "must be in [0, 1)", str(validation_fraction));
  require(std::isfinite(target_epsilon) && target_epsilon >= 0.0,
          "target-epsilon",
          "must be > 0 (or 0 to give --noise-multiplier instead)",
          str(target_epsilon));
  require(std::isfinite(delta) && delta > 0.0 && delta < 1.0, "delta",
          "must be in (0, 1)", str(delta));
  require(std::isfinite(noise_multiplier) && noise_multiplier >= 0.0,
          "noise-multiplier", "must be > 0", str(noise_multiplier));
  // Far past any useful value, and σ·C·z must stay finite in float.
  require(noise_multiplier <= kMaxNoiseMultiplier, "noise-multiplier",
          "must be at most " + str(kMaxNoiseMultiplier), str(noise_multiplier));
  if (target_epsilon == 0.0 && noise_multiplier == 0.0) {
    throw std::invalid_argument(
        "give --target-epsilon > 0 (noise is calibrated) or --noise-multiplier "
        "> 0 (epsilon is "
        "reported); both are 0 (a noise multiplier of 0 would add no noise)");
  }
  if (target_epsilon > 0.0 && noise_multiplier > 0.0) {
    throw std::invalid_argument(
        "give only one of --target-epsilon and --noise-multiplier, got both (" +
        str(target_epsilon) + " and " + str(noise_multiplier) + ")");
  }
  require(std::isfinite(max_grad_norm) && max_grad_norm > 0.0, "max-grad-norm",
          "must be > 0", str(max_grad_norm));
  require(max_grad_norm <= kMaxGradNorm, "max-grad-norm",
          "must be at most " + str(kMaxGradNorm), str(max_grad_norm));
  require_one_of("clipping", clipping, {"flat", "per-layer"});
  require_one_of("routes", routes, {"model", "measure", "fixed"});
  require(backward_passes == 1 || backward_passes == 2, "backward-passes",
          "must be 1 or 2", str(backward_passes));
  if (backward_passes == 2 && clipping != "flat") {
    throw std::invalid_argument(
        "--backward-passes 2 clips the flat norm only, got --clipping " +
        clipping);
  }
  require_one_of("mixed-precision", mixed_precision, {"no", "bf16"});
  if (mixed_precision != "no" && backward_passes == 2) {
    throw std::invalid_argument(
        "--mixed-precision " + mixed_precision +
        " needs --backward-passes 1 (the second pass would sum the clipped "
        "gradients in " +
        mixed_precision + ", not float32)");
  }
  require(max_kept_mb >= -1 && max_kept_mb <= (int64_t{1} << 30), "max-kept-mb",
          "must be -1 (no bound) or a size in MiB >= 0", str(max_kept_mb));
  if (!route_cache.empty() && routes == "model") {
    throw std::invalid_argument(
        "--route-cache needs --routes measure or fixed (the cost model reads "
        "no cache)");
  }
  require_one_of("accountant", accountant, {"rdp", "prv"});
  require_one_of("sampler", sampler, {"poisson", "shuffle"});
  require(batch_size > 0, "batch-size", "must be > 0", str(batch_size));
  require(max_physical_batch_size > 0, "max-physical-batch-size", "must be > 0",
          str(max_physical_batch_size));
  require(epochs >= 0 && epochs <= kMaxEpochs, "epochs",
          "must be in [0, " + str(kMaxEpochs) + "]", str(epochs));
  require(steps >= 0 && steps <= kMaxSteps, "steps",
          "must be in [0, " + str(kMaxSteps) + "]", str(steps));
  if ((epochs > 0) == (steps > 0)) {
    throw std::invalid_argument(
        "give exactly one of --epochs and --steps (got epochs=" + str(epochs) +
        ", steps=" + str(steps) + ")");
  }
  require(std::isfinite(lr) && lr > 0.0, "lr", "must be > 0", str(lr));
  require_one_of("optimizer", optimizer, {"sgd", "adam", "adamw"});
  require(momentum >= 0.0 && momentum < 1.0, "momentum", "must be in [0, 1)",
          str(momentum));
  require(weight_decay >= 0.0, "weight-decay", "must be >= 0",
          str(weight_decay));
  require_one_of("lr-schedule", lr_schedule, {"constant", "cosine"});
  require(warmup_steps >= 0, "warmup-steps", "must be >= 0", str(warmup_steps));
  require(augmult >= 0, "augmult", "must be >= 0", str(augmult));
  require_one_of("augment-crop", augment_crop, {"pad", "random-resized"});
  require(crop_scale_min > 0 && crop_scale_min <= 1, "crop-scale-min",
          "must be in (0, 1]", str(crop_scale_min));
  if (augment_crop != "pad" && augmult == 0) {
    throw std::invalid_argument(
        "--augment-crop " + augment_crop +
        " crops the augmented views: it needs --augmult >= 1");
  }
  require(ema_decay >= 0.0 && ema_decay < 1.0, "ema-decay", "must be in [0, 1)",
          str(ema_decay));
  require(polyak_start >= -1, "polyak-start",
          "must be a step >= 0, or -1 for off", str(polyak_start));
  require(std::isfinite(collective_timeout) && collective_timeout > 0,
          "collective-timeout", "must be a finite number of seconds > 0",
          str(collective_timeout));
  require(checkpoint_every >= 0, "checkpoint-every", "must be >= 0",
          str(checkpoint_every));
  if (resume && checkpoint.empty()) {
    throw std::invalid_argument("--resume needs --checkpoint PATH");
  }
  if (resume && overwrite) {
    throw std::invalid_argument(
        "give only one of --resume (continue the run in --checkpoint) and "
        "--overwrite "
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
    throw std::invalid_argument("config '" + path +
                                "': expected a table of keys");
  }
  for (const auto& [raw_key, value] : root.as_table()) {
    std::string key = raw_key;
    std::replace(key.begin(), key.end(), '_', '-');
    const ConfigField* field = find_field(key);
    if (field == nullptr) {
      throw std::invalid_argument("config '" + path + "': unknown key '" +
                                  raw_key + "'");
    }
    try {
      std::visit(FromToml{value, config}, field->member);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("config '" + path + "': key '" + raw_key +
                                  "': " + e.what());
    }
  }
}

std::string to_json(const TrainConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : config_fields()) {
    std::string key = f.key;
    std::replace(key.begin(), key.end(), '-', '_');
    std::visit(
        [&](auto member) {
          const auto& value = c.*member;
          if constexpr (std::is_same_v<std::decay_t<decltype(value)>,
                                       std::optional<std::uint64_t>>) {
            j[key] = value ? nlohmann::json(*value) : nlohmann::json(nullptr);
          } else {
            j[key] = value;
          }
        },
        f.member);
  }
  return j.dump();
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const auto& f : config_fields()) keys.push_back(f.key);
  return keys;
}

const std::vector<ConfigField>& config_fields() {
  static const std::vector<ConfigField> table = {
      {"task", &TrainConfig::task,
       "classify (images), lm (byte-level language model) or diffusion "
       "(class-conditional UNet; see `dptrain diffusion`)"},
      {"dataset", &TrainConfig::dataset,
       "fashion-mnist, or a path: IDX folder, CIFAR folder, HDF5 file; --task "
       "lm: text:FILE or jsonl:FILE (one {\"text\": ...} per line)"},
      {"validation-fraction", &TrainConfig::validation_fraction,
       "carve this fraction of train (seeded) and evaluate on it instead of "
       "test"},
      {"model", &TrainConfig::model,
       "model name (see `dptrain model list`; --task lm: griffin-tiny, "
       "hawk-tiny, griffin-25m, hawk-25m, ...; --task diffusion: unet-small, "
       "unet-dpdm, unet-32, unet-64)"},
      {"sequence-length", &TrainConfig::sequence_length,
       "--task lm: tokens per sequence (bytes without --tokenizer); a longer "
       "JSONL record is cut, a shorter one padded (no loss on padding)"},
      {"tokenizer", &TrainConfig::tokenizer,
       "--task lm: a SentencePiece tokenizer.model (e.g. Gemma's); the "
       "model's vocabulary becomes its size (default: bytes, 256)"},
      {"privacy-unit", &TrainConfig::privacy_unit,
       "--task lm: record (one sequence or JSONL record) or user (all records "
       "of one \"user\" of --dataset jsonl:FILE: user-level DP)"},
      {"records-per-user", &TrainConfig::records_per_user,
       "--privacy-unit user: a sampled user's gradient is the mean over at "
       "most this many of their records, clipped once"},
      {"freeze-embeddings", &TrainConfig::freeze_embeddings,
       "--task lm: do not train the tied embedding"},
      {"train-blocks", &TrainConfig::train_blocks,
       "--task lm: train only these residual blocks, e.g. 0,2"},
      {"lora-rank", &TrainConfig::lora_rank,
       "--task lm: LoRA adapters of this rank on the Linear layers of "
       "--lora-layers, all else frozen; --save-weights writes them merged "
       "(0 = full fine-tuning)"},
      {"lora-alpha", &TrainConfig::lora_alpha,
       "LoRA's alpha: the adapters' output is scaled by alpha/rank (0 = the "
       "rank)"},
      {"lora-layers", &TrainConfig::lora_layers,
       "regex over module paths of the Linear layers LoRA adapts"},
      {"init-checkpoint", &TrainConfig::init_checkpoint,
       "start from these weights: --task classify: dptrain weights (.h5 or "
       ".pt, see models/README.md); --task lm: a RecurrentGemma-named "
       ".safetensors or .h5; --task diffusion: the same UNet's dptrain weights "
       "(`dptrain diffusion pretrain --save-weights`)"},
      {"reset-classifier", &TrainConfig::reset_classifier,
       "new classifier head for the data's classes (not loaded from "
       "--init-checkpoint); --task diffusion: a new class embedding (the "
       "pre-trained one may have other classes)"},
      {"trainable", &TrainConfig::trainable,
       "parameters to train: all, classifier, or a regex over names; others "
       "frozen"},
      {"classes", &TrainConfig::classes,
       "train and evaluate on these classes only (relabelled 0..k-1), e.g. "
       "5,6,7"},
      {"image-size", &TrainConfig::image_size,
       "H,W: scale images of an image folder or CSV list to cover H x W and "
       "crop the centre on load (default: their own size, which must agree)"},
      {"save-weights", &TrainConfig::save_weights,
       "write the final weights, the release artefact (.h5 or .pt; --task lm: "
       ".pt; the EMA's also to <stem>.ema<ext>)"},
      {"eval-dataset", &TrainConfig::eval_dataset,
       "--task lm: a public text file for perplexity (default: the held-out "
       "tail of --dataset, private and not noised)"},
      {"noise-multiplicity", &TrainConfig::noise_multiplicity,
       "--task diffusion: K (sigma, noise) draws per example, averaged before "
       "clipping (DPDM: 32)"},
      {"label-dropout", &TrainConfig::label_dropout,
       "--task diffusion: probability a row's label becomes the null class "
       "(classifier-free guidance)"},
      {"edm-p-mean", &TrainConfig::edm_p_mean,
       "--task diffusion: mean of ln sigma of the training noise levels"},
      {"edm-p-std", &TrainConfig::edm_p_std,
       "--task diffusion: standard deviation of ln sigma"},
      {"sigma-data", &TrainConfig::sigma_data,
       "--task diffusion: EDM's sigma_data (images are scaled to [-1, 1])"},
      {"diffusion-objective", &TrainConfig::diffusion_objective,
       "--task diffusion: edm (Karras et al.) or v (v-prediction); sample "
       "with the same"},
      {"sigma-distribution", &TrainConfig::sigma_distribution,
       "--task diffusion: training noise levels: log-normal, high-noise-mix "
       "(log-normal mixed with log-uniform on [0.002, 80]) or cosine"},
      {"high-noise-weight", &TrainConfig::high_noise_weight,
       "--task diffusion: the log-uniform share of high-noise-mix"},
      {"target-epsilon", &TrainConfig::target_epsilon,
       "privacy budget; noise is calibrated to it"},
      {"delta", &TrainConfig::delta, "delta of (epsilon, delta)-DP"},
      {"noise-multiplier", &TrainConfig::noise_multiplier,
       "sigma, instead of --target-epsilon (epsilon is then reported)"},
      {"max-grad-norm", &TrainConfig::max_grad_norm,
       "per-example clipping norm C"},
      {"normalize-clipped", &TrainConfig::normalize_clipped,
       "rescale clipped gradients by 1/C (De et al.)"},
      {"clipping", &TrainConfig::clipping, "flat or per-layer"},
      {"routes", &TrainConfig::routes,
       "how per-example norms are computed, layer by layer: model (cost "
       "model), measure (time each exact route once per layer shape, keep "
       "the fastest) or fixed (from --route-cache, else the cost model)"},
      {"route-cache", &TrainConfig::route_cache,
       "file of measured routes: read by measure and fixed, written by "
       "measure"},
      {"backward-passes", &TrainConfig::backward_passes,
       "1: one backward pass (fastest); 2: per-example norms as each "
       "gradient arrives, then a second backward of the reweighted loss "
       "(about the non-private peak memory, one more backward of time; flat "
       "clipping, no tied weights)"},
      {"mixed-precision", &TrainConfig::mixed_precision,
       "no, or bf16: the training forward under autocast to bf16; "
       "parameters, per-example norms, clipped sums and noise stay float32 "
       "(one backward pass; evaluation in float32)"},
      {"max-kept-mb", &TrainConfig::max_kept_mb,
       "bound (MiB) on the per-example gradients kept between the norms and "
       "the weighted sums; beyond it a layer's sum is recomputed from its "
       "activations (less memory, more time); -1 = no bound"},
      {"accountant", &TrainConfig::accountant, "rdp or prv"},
      {"sampler", &TrainConfig::sampler,
       "poisson, or shuffle (NOT covered by the accountant)"},
      {"batch-size", &TrainConfig::batch_size,
       "expected logical batch size B; q = B/N"},
      {"max-physical-batch-size", &TrainConfig::max_physical_batch_size,
       "rows (examples x augmult) per forward/backward chunk"},
      {"epochs", &TrainConfig::epochs, "epochs (steps = ceil(epochs N / B))"},
      {"steps", &TrainConfig::steps, "logical steps, instead of --epochs"},
      {"lr", &TrainConfig::lr, "learning rate"},
      {"optimizer", &TrainConfig::optimizer, "sgd, adam or adamw"},
      {"momentum", &TrainConfig::momentum, "SGD momentum"},
      {"nesterov", &TrainConfig::nesterov, "Nesterov momentum"},
      {"weight-decay", &TrainConfig::weight_decay,
       "weight decay (applied after noise)"},
      {"lr-schedule", &TrainConfig::lr_schedule, "constant or cosine"},
      {"warmup-steps", &TrainConfig::warmup_steps, "linear warm-up steps"},
      {"augmult", &TrainConfig::augmult,
       "K augmented views per example (crop+flip), averaged before clipping; 0 "
       "= none"},
      {"augment-crop", &TrainConfig::augment_crop,
       "the views' crop: pad (reflect-pad 4, random crop) or random-resized "
       "(a random box of area fraction [--crop-scale-min, 1], aspect 3/4..4/3, "
       "scaled back; for image folders of large photos)"},
      {"crop-scale-min", &TrainConfig::crop_scale_min,
       "--augment-crop random-resized: the smallest box, as a fraction of the "
       "image's area"},
      {"ema-decay", &TrainConfig::ema_decay,
       "EMA of parameters with warm-up; 0 = off"},
      {"polyak-start", &TrainConfig::polyak_start,
       "uniform (Polyak) average of the iterates from this step on, evaluated "
       "alongside the last iterate; -1 = off"},
      {"seed", &TrainConfig::seed,
       "seed: reproducible initialisation, sampling, augmentation and noise; "
       "not for release (default: secure randomness from the OS)"},
      {"device", &TrainConfig::device, "cpu, cuda, cuda:N or auto"},
      {"checkpoint", &TrainConfig::checkpoint,
       "checkpoint file (written atomically)"},
      {"collective-timeout", &TrainConfig::collective_timeout,
       "data-parallel runs (dptrain launch, or WORLD_SIZE > 1): seconds a "
       "rank waits for the others at a collective before it stops"},
      {"checkpoint-every", &TrainConfig::checkpoint_every,
       "steps between checkpoints; 0 = each epoch"},
      {"resume", &TrainConfig::resume,
       "continue the run saved in --checkpoint"},
      {"overwrite", &TrainConfig::overwrite,
       "start afresh over an existing --checkpoint, discarding its privacy "
       "record"},
      {"metrics", &TrainConfig::metrics,
       "append per-epoch metrics as JSON lines to this file"},
      {"summary", &TrainConfig::summary,
       "write the final summary JSON to this file"},
      {"diagnostics", &TrainConfig::diagnostics,
       "NON-PRIVATE clipping statistics in the log"},
  };
  return table;
}

}  // namespace dptrain::train
