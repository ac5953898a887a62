#include "dptrain/train/diffusion_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "dptrain/datasets/dataset_info.h"
#include "dptrain/datasets/subsets.h"
#include "dptrain/datasets/transforms.h"
#include "dptrain/models/fine_tuning.h"
#include "dptrain/models/registry.h"
#include "dptrain/models/weights.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/classifier_trainer.h"
#include "dptrain/train/dp_plan.h"
#include "dptrain/train/image_run.h"
#include "dptrain/train/optimization.h"
#include "dptrain/train/outputs.h"
#include "dptrain/train/progress.h"
#include "dptrain/train/runtime.h"
#include "json_number.h"

namespace dptrain::train {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::int64_t views_of(const TrainConfig& c) {
  return std::max<std::int64_t>(1, c.augmult);
}

// The examples at `indices` as the rows of the EDM loss: each example's
// views (augmult > 0) each repeated K times, so rows u·V·K … u·V·K+V·K−1
// belong to unit u, as the engine's groups expect.
std::pair<at::Tensor, at::Tensor> unit_rows(
    const datasets::ImageDataset& data, const std::vector<std::int64_t>& idx,
    const TrainConfig& c, std::mt19937_64& rng, c10::Device device,
    c10::ScalarType dtype) {
  const datasets::Batch b =
      c.augmult > 0 ? datasets::get_augmented_batch(
                          data, idx, c.augmult, augment_options(c), rng, device)
                    : data.get_batch(idx, device);
  return {to_diffusion_range(b.images, dtype)
              .repeat_interleave(c.noise_multiplicity, 0),
          b.labels.repeat_interleave(c.noise_multiplicity, 0)};
}

// Before any data is read.
void check_diffusion_model(const std::string& name) {
  const auto names = models::list_diffusion_models();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    throw std::invalid_argument("--model " + name +
                                " is not a diffusion model; --task diffusion "
                                "takes one of " +
                                join(names));
  }
}

c10::ScalarType dtype_of(const models::UNet& net) {
  return net->parameters().front().scalar_type();
}

void check_fits(const models::UNet& net, const datasets::ImageDataset& data) {
  const auto& cfg = net->config();
  const auto s = data.shape();
  if (s[0] != cfg.in_channels || s[1] != cfg.image_size ||
      s[2] != cfg.image_size) {
    throw std::invalid_argument(
        "--model " + cfg.name + " takes " + std::to_string(cfg.in_channels) +
        "×" + std::to_string(cfg.image_size) + "×" +
        std::to_string(cfg.image_size) + " images, the data set has " +
        std::to_string(s[0]) + "×" + std::to_string(s[1]) + "×" +
        std::to_string(s[2]));
  }
  if (data.num_classes() > cfg.num_classes) {
    throw std::invalid_argument("the data set has " +
                                std::to_string(data.num_classes()) +
                                " classes, the model's class embedding " +
                                std::to_string(cfg.num_classes));
  }
}

std::string epoch_line(const DiffusionEpochRecord& r, bool is_private) {
  std::ostringstream line;
  line << "epoch " << r.epoch << " step " << r.step << ": train loss "
       << format_fixed(r.train_loss) << " (non-private)";
  if (is_private) {
    line << ", epsilon " << format_fixed(r.epsilon);
  } else {
    line << ", no privacy (public pre-training)";
  }
  line << ", " << format_fixed(r.seconds, 1) << " s";
  return line.str();
}

nlohmann::json edm_json(const TrainConfig& c) {
  return {{"noise_multiplicity", c.noise_multiplicity},
          {"augmult", c.augmult},
          {"label_dropout", c.label_dropout},
          {"edm_p_mean", c.edm_p_mean},
          {"edm_p_std", c.edm_p_std},
          {"sigma_data", c.sigma_data},
          {"diffusion_objective", c.diffusion_objective},
          {"sigma_distribution", c.sigma_distribution},
          {"high_noise_weight", c.high_noise_weight},
          {"image_range", "[-1, 1] (x / 127.5 - 1)"}};
}

}  // namespace

at::Tensor to_diffusion_range(const at::Tensor& images, c10::ScalarType dtype) {
  return images.to(dtype) / 127.5 - 1.0;
}

at::Tensor from_diffusion_range(const at::Tensor& images) {
  return ((images.to(torch::kFloat) + 1.0) * 127.5)
      .round()
      .clamp(0, 255)
      .to(torch::kUInt8);
}

models::Parameterization diffusion_objective(const std::string& name) {
  if (name == "edm") return models::Parameterization::kEdm;
  if (name == "v") return models::Parameterization::kV;
  throw std::invalid_argument("--diffusion-objective must be edm or v, got '" +
                              name + "'");
}

DiffusionDraws diffusion_draws(const TrainConfig& c) {
  DiffusionDraws d;
  d.edm.p_mean = c.edm_p_mean;
  d.edm.p_std = c.edm_p_std;
  d.edm.sigma_data = c.sigma_data;
  d.edm.parameterization = diffusion_objective(c.diffusion_objective);
  d.edm.sigma_distribution =
      c.sigma_distribution == "cosine" ? models::SigmaDistribution::kCosine
      : c.sigma_distribution == "high-noise-mix"
          ? models::SigmaDistribution::kLogNormalLogUniformMix
          : models::SigmaDistribution::kLogNormal;
  d.edm.high_noise_weight = c.high_noise_weight;
  d.label_dropout = c.label_dropout;
  return d;
}

RowDraws RowDraws::rows(std::int64_t first, std::int64_t count) const {
  return {sigma.narrow(0, first, count), noise.narrow(0, first, count),
          drop_label.narrow(0, first, count)};
}

RowDraws draw_rows(std::int64_t rows, at::IntArrayRef image_shape,
                   const DiffusionDraws& draws, std::mt19937_64& rng,
                   const at::TensorOptions& options) {
  at::Generator gen = at::detail::createCPUGenerator(rng());
  const auto cpu = options.device(torch::kCPU);
  std::vector<std::int64_t> shape{rows};
  shape.insert(shape.end(), image_shape.begin(), image_shape.end());
  RowDraws d;
  d.sigma = models::sample_training_sigmas(rows, draws.edm, gen, options);
  d.noise = at::empty(shape, cpu).normal_(0.0, 1.0, gen).to(options.device());
  d.drop_label = at::empty({rows}, cpu.dtype(torch::kDouble))
                     .uniform_(0.0, 1.0, gen)
                     .lt(draws.label_dropout)
                     .to(options.device());
  return d;
}

at::Tensor edm_row_losses(models::UNet& net, const at::Tensor& x,
                          const at::Tensor& labels, const RowDraws& draws,
                          const models::EdmOptions& edm) {
  const auto used_labels = torch::where(
      draws.drop_label, torch::full_like(labels, net->null_class()), labels);
  const models::Denoiser denoiser = [&](const at::Tensor& y,
                                        const at::Tensor& s) {
    return models::edm_denoise(net, y, s, used_labels, edm);
  };
  return models::edm_loss(denoiser, x, draws.sigma, draws.noise, edm);
}

at::Tensor diffusion_row_losses(models::UNet& net, const at::Tensor& x,
                                const at::Tensor& labels,
                                const DiffusionDraws& draws,
                                std::mt19937_64& rng) {
  const auto d =
      draw_rows(x.size(0), x.sizes().slice(1), draws, rng, x.options());
  return edm_row_losses(net, x, labels, d, draws.edm);
}

models::UNet build_diffusion_model(const TrainConfig& config,
                                   const datasets::ImageDataset& data) {
  check_diffusion_model(config.model);
  models::UNetConfig cfg = models::unet_config(config.model);
  cfg.in_channels = data.shape()[0];
  cfg.num_classes = data.num_classes();
  if (data.shape()[1] != cfg.image_size || data.shape()[2] != cfg.image_size) {
    throw std::invalid_argument(
        "--model " + config.model + " takes " + std::to_string(cfg.image_size) +
        "×" + std::to_string(cfg.image_size) + " images, the data set has " +
        std::to_string(data.shape()[1]) + "×" +
        std::to_string(data.shape()[2]));
  }
  if (config.seed) torch::manual_seed(*config.seed);
  models::UNet net(cfg);
  if (!config.init_checkpoint.empty()) {
    // --reset-classifier: the class embedding is this data set's own (its
    // classes need not be the pre-training classes, nor as many); the rest
    // is loaded all-or-nothing.
    models::LoadOptions load;
    if (config.reset_classifier) load.exclude = "^class_embedding\\.";
    try {
      models::load_weights(*net, config.init_checkpoint, load);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(
          "--init-checkpoint: " + std::string(e.what()) +
          (config.reset_classifier
               ? std::string(" (pre-trained for another --model or channel "
                             "count?)")
               : std::string(" (pre-trained for another --model, channel "
                             "count or number of classes? --reset-classifier "
                             "starts a new class embedding)")));
    }
  }
  if (config.trainable != "all") {
    try {
      models::set_trainable(*net, config.trainable);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("--trainable: " + std::string(e.what()));
    }
  }
  return net;
}

datasets::ImageDataset load_diffusion_data(const TrainConfig& config) {
  const std::string path = datasets::resolve_dataset_path(config.dataset);
  const auto splits = datasets::list_splits(path);
  const bool has_train =
      std::find(splits.begin(), splits.end(), "train") != splits.end();
  datasets::ImageDataset data = datasets::load_dataset(
      path, has_train ? "train" : splits.front(), image_folder_options(config));
  if (!config.classes.empty()) {
    try {
      data = datasets::subset_by_classes(data, config.classes);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("--classes: " + std::string(e.what()));
    }
  }
  return data;
}

struct DiffusionTrainer::State {
  models::UNet net{nullptr};
  std::unique_ptr<PrivateLoop> loop;
};

PrivateTask make_diffusion_task(models::UNet& net,
                                const datasets::ImageDataset& data,
                                const TrainConfig& c, c10::Device device,
                                std::mt19937_64& rng) {
  const DiffusionDraws draws = diffusion_draws(c);
  const std::int64_t rows_per_unit = c.noise_multiplicity * views_of(c);
  const c10::ScalarType dtype = dtype_of(net);
  PrivateTask task;
  task.dataset_size = data.size();
  task.group_size = rows_per_unit;
  task.privacy_unit =
      "one example (its " + std::to_string(c.noise_multiplicity) +
      " noise draws" +
      (c.augmult > 0 ? " of each of " + std::to_string(c.augmult) + " views"
                     : std::string()) +
      " are one unit)";
  task.identity_extra = edm_json(c).dump();
  task.data_fingerprint = image_data_fingerprint(data, c);
  task.losses = [&net, &data, &rng, c, device, dtype, draws, rows_per_unit](
                    const std::vector<std::int64_t>& chunk, LoopStats& stats) {
    const auto rows = unit_rows(data, chunk, c, rng, device, dtype);
    auto losses =
        diffusion_row_losses(net, rows.first, rows.second, draws, rng);
    torch::NoGradGuard no_grad;
    stats.loss_sum +=
        losses.sum().item<double>() / static_cast<double>(rows_per_unit);
    stats.count += static_cast<std::int64_t>(chunk.size());
    return losses;
  };
  task.save = [&rng](torch::serialize::OutputArchive& out) {
    std::ostringstream text;
    text << rng;
    out.write("diffusion_rng", c10::IValue(text.str()));
  };
  task.load = [&rng](torch::serialize::InputArchive& in) {
    c10::IValue value;
    in.read("diffusion_rng", value);
    std::istringstream text(value.toStringRef());
    std::mt19937_64 saved;
    text >> saved;
    rng = saved;
  };
  return task;
}

DiffusionTrainer::DiffusionTrainer(models::UNet model, ValidConfig config)
    : state_(std::make_unique<State>()) {
  if (!model) throw std::invalid_argument("DiffusionTrainer: model is null");
  if (config->task != "diffusion") {
    throw std::invalid_argument(
        "DiffusionTrainer needs --task diffusion, got --task " + config->task);
  }
  state_->net = std::move(model);
  state_->loop = std::make_unique<PrivateLoop>(
      std::static_pointer_cast<torch::nn::Module>(state_->net.ptr()),
      std::move(config));
  log = [](const std::string& line) { std::cout << line << std::endl; };
}

DiffusionTrainer::~DiffusionTrainer() = default;

PrivateLoop& DiffusionTrainer::loop() { return *state_->loop; }

double DiffusionTrainer::epsilon() const { return state_->loop->epsilon(); }

bool DiffusionTrainer::save_weights(const std::string& path, bool use_ema) {
  auto& s = *state_;
  const AveragedParameters held(s.loop->optimization(), *s.net,
                                use_ema ? Average::kEma : Average::kNone);
  if (use_ema && !held.active()) return false;
  models::save_weights(*s.net, path);
  return true;
}

DiffusionFitResult DiffusionTrainer::fit(const datasets::ImageDataset& train) {
  auto& s = *state_;
  const TrainConfig& c = s.loop->config();
  check_dataset_size(c, train.size());
  check_fits(s.net, train);
  // The draws (σ, noise, label dropout, augmentation) are task state: a
  // resumed run continues this generator's stream.
  std::mt19937_64 rng(c.seed ? *c.seed + 2 : std::random_device{}());
  DiffusionFitResult result;
  result.num_classes = s.net->config().num_classes;
  PrivateTask task =
      make_diffusion_task(s.net, train, c, s.loop->device(), rng);
  result.rows_per_unit = task.group_size;
  task.end_epoch = [&](const EpochContext& ctx) {
    DiffusionEpochRecord r;
    r.epoch = ctx.epoch;
    r.step = ctx.step;
    r.train_loss =
        ctx.stats.count > 0
            ? ctx.stats.loss_sum / static_cast<double>(ctx.stats.count)
            : kNaN;
    r.epsilon = ctx.epsilon;
    r.seconds = ctx.seconds;
    result.epochs.push_back(r);
    const nlohmann::json j = {
        {"epoch", r.epoch},
        {"step", r.step},
        {"train_loss_nonprivate", nan_to_null(r.train_loss)},
        {"epsilon", r.epsilon},
        {"delta", c.delta},
        {"seconds", r.seconds}};
    return EpochOutput{epoch_line(r, /*is_private=*/true), j.dump()};
  };
  s.loop->log = log;
  static_cast<LoopResult&>(result) = s.loop->run(task);
  return result;
}

std::string diffusion_summary_json(const DiffusionFitResult& r,
                                   const TrainConfig& c) {
  nlohmann::json j = nlohmann::json::parse(privacy_summary_json(r, c));
  j.update({
      {"task", "diffusion"},
      {"model", c.model},
      {"num_classes", r.num_classes},
      {"rows_per_unit", r.rows_per_unit},
      {"diffusion", edm_json(c)},
      {"adjacency", "add_remove_one_example"},
      {"train_loss_nonprivate",
       nan_to_null(r.epochs.empty() ? kNaN : r.epochs.back().train_loss)},
      {"train_loss_note",
       "computed from the private training data without noise: not "
       "differentially private, not for release"},
      {"post_processing",
       "sampling from these weights, and every use of the samples (training "
       "a classifier, tuning its hyper-parameters, publishing them), is "
       "post-processing: it carries the same (epsilon, delta) as this run "
       "and costs no further privacy"},
      {"wall_seconds", r.wall_seconds},
      {"config", nlohmann::json::parse(to_json(c))},
  });
  return j.dump();
}

void check_pretraining_config(const TrainConfig& config) {
  // What a private run would use and this one ignores is refused, not
  // silently dropped: nothing here is differentially private.
  if (config.target_epsilon > 0 || config.noise_multiplier > 0) {
    throw std::invalid_argument(
        "--target-epsilon and --noise-multiplier do not apply to non-private "
        "pre-training (no noise is added); use `dptrain diffusion finetune` "
        "for a private run");
  }
  if (!config.checkpoint.empty() || config.resume) {
    throw std::invalid_argument(
        "--checkpoint and --resume are for private runs; pre-training writes "
        "only --save-weights");
  }
  if (!config.metrics.empty() || config.diagnostics) {
    throw std::invalid_argument(
        "--metrics and --diagnostics are for private runs; pre-training logs "
        "its (non-private) losses and writes them into --summary");
  }
  if (config.task != "diffusion") {
    throw std::invalid_argument("pre-training needs --task diffusion, got " +
                                config.task);
  }
  // validate() checks every other field; its privacy checks need a noise
  // multiplier, which pre-training does not have.
  TrainConfig checked = config;
  checked.noise_multiplier = 1.0;
  checked.validate();
}

PretrainResult pretrain_diffusion(
    models::UNet& model, const datasets::ImageDataset& public_data,
    const TrainConfig& config,
    const std::function<void(const std::string&)>& log) {
  check_pretraining_config(config);
  if (!model) throw std::invalid_argument("pretrain_diffusion: model is null");
  const std::int64_t n = public_data.size();
  if (n == 0) throw std::invalid_argument("--dataset: the data set is empty");
  check_fits(model, public_data);
  const auto device = parse_device(config.device);
  model->to(device);
  model->train();
  if (log) {
    log("pre-training: NON-PRIVATE (no clipping, no noise, no accountant) on " +
        std::to_string(n) +
        " examples of --dataset, which must be public data");
  }

  const auto wall_start = std::chrono::steady_clock::now();
  const auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         wall_start)
        .count();
  };
  const std::int64_t batch = std::min(config.batch_size, n);
  const std::int64_t steps_per_epoch = (n + batch - 1) / batch;
  const std::int64_t total =
      config.steps > 0 ? config.steps : config.epochs * steps_per_epoch;
  std::vector<at::Tensor> params;
  for (const auto& p : model->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  Optimization optimization(params, *model, config, total);
  const DiffusionDraws draws = diffusion_draws(config);
  std::mt19937_64 rng(config.seed ? *config.seed + 3 : std::random_device{}());
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);

  PretrainResult result;
  result.examples = n;
  double loss_sum = 0.0;
  std::int64_t loss_count = 0;
  // A bar over the run's steps (drawn on terminals only).
  ProgressBar bar("pre-training", total);
  for (std::int64_t step = 0; step < total; ++step) {
    const std::int64_t pos = step % steps_per_epoch;
    if (pos == 0) std::shuffle(order.begin(), order.end(), rng);
    const auto first = order.begin() + pos * batch;
    const std::vector<std::int64_t> idx(
        first, first + std::min<std::int64_t>(batch, n - pos * batch));
    for (auto& p : params) p.mutable_grad() = at::Tensor();
    const auto rows =
        unit_rows(public_data, idx, config, rng, device, dtype_of(model));
    const auto loss =
        diffusion_row_losses(model, rows.first, rows.second, draws, rng).mean();
    loss.backward();
    optimization.step(*model, step);
    loss_sum += loss.item<double>() * static_cast<double>(idx.size());
    loss_count += static_cast<std::int64_t>(idx.size());
    ++result.steps;
    bar.update(step + 1, "loss " + format_fixed(loss.item<double>(), 4));
    if (pos + 1 == steps_per_epoch || step + 1 == total) {
      bar.finish();
      DiffusionEpochRecord r;
      r.epoch = step / steps_per_epoch + 1;
      r.step = step + 1;
      r.train_loss = loss_sum / static_cast<double>(loss_count);
      r.seconds = seconds();
      result.epochs.push_back(r);
      if (log) log(epoch_line(r, /*is_private=*/false));
      loss_sum = 0.0;
      loss_count = 0;
    }
  }
  result.wall_seconds = seconds();
  return result;
}

std::string pretrain_summary_json(const PretrainResult& r,
                                  const TrainConfig& c) {
  nlohmann::json epochs = nlohmann::json::array();
  for (const auto& e : r.epochs) {
    epochs.push_back(
        {{"epoch", e.epoch}, {"step", e.step}, {"train_loss", e.train_loss}});
  }
  return nlohmann::json{
      {"task", "diffusion-pretrain"},
      {"non_private", true},
      {"privacy",
       "none: public pre-training without clipping, noise or accounting; "
       "the data set must be public (its examples are not protected). Only "
       "`dptrain diffusion finetune` touches private data"},
      {"epsilon", nullptr},
      {"model", c.model},
      {"dataset", c.dataset},
      {"classes", c.classes},
      {"examples", r.examples},
      {"steps", r.steps},
      {"train_loss",
       nan_to_null(r.epochs.empty() ? kNaN : r.epochs.back().train_loss)},
      {"epochs", epochs},
      {"diffusion", edm_json(c)},
      {"wall_seconds", r.wall_seconds},
      {"config", nlohmann::json::parse(to_json(c))}}
      .dump();
}

std::uint32_t file_crc32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("'" + path + "': cannot read the file");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return crc32_of(bytes.str());
}

std::string run_diffusion_finetuning(const TrainConfig& raw_config) {
  const ValidConfig valid(raw_config);
  const TrainConfig& config = *valid;
  if (config.task != "diffusion") {
    throw std::invalid_argument(
        "dptrain diffusion finetune needs --task diffusion, got --task " +
        config.task);
  }
  check_diffusion_model(config.model);
  check_outputs(config);  // before anything is read or spent
  const datasets::ImageDataset data = load_diffusion_data(config);
  DiffusionTrainer trainer(build_diffusion_model(config, data), valid);
  const DiffusionFitResult fit = trainer.fit(data);
  nlohmann::json crcs = nlohmann::json::object();
  if (!config.save_weights.empty()) {
    trainer.save_weights(config.save_weights);
    crcs[config.save_weights] = file_crc32(config.save_weights);
    const std::string ema = ema_weights_path(config.save_weights);
    if (trainer.save_weights(ema, /*use_ema=*/true)) {
      crcs[ema] = file_crc32(ema);
    }
  }
  auto summary = nlohmann::json::parse(diffusion_summary_json(fit, config));
  // What lets `sample --privacy-summary` check that its --weights are this
  // run's, so the samples are not labelled with another run's (ε, δ).
  summary["weights_crc32"] = crcs;
  summary["train_examples"] = data.size();
  summary["image_shape"] = {data.shape()[0], data.shape()[1], data.shape()[2]};
  return summary.dump();
}

std::string run_diffusion_pretraining(const TrainConfig& config) {
  check_pretraining_config(config);
  check_diffusion_model(config.model);
  check_outputs(config);  // before anything is read
  const datasets::ImageDataset data = load_diffusion_data(config);
  models::UNet net = build_diffusion_model(config, data);
  const auto log = [](const std::string& line) {
    std::cout << line << std::endl;
  };
  const PretrainResult result = pretrain_diffusion(net, data, config, log);
  if (!config.save_weights.empty()) {
    models::save_weights(*net, config.save_weights);
  }
  auto summary = nlohmann::json::parse(pretrain_summary_json(result, config));
  summary["image_shape"] = {data.shape()[0], data.shape()[1], data.shape()[2]};
  summary["num_classes"] = net->config().num_classes;
  return summary.dump();
}

}  // namespace dptrain::train
