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

#include "dptrain/datasets/transforms.h"
#include "dptrain/models/weights.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/dp_plan.h"
#include "dptrain/train/image_run.h"
#include "dptrain/train/optimization.h"
#include "dptrain/train/private_loop.h"
#include "json_number.h"

namespace dptrain::train {
namespace {

constexpr std::int64_t kEvalBatch = 1024;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fmt(double v, int precision = 4) {
  return format_fixed(v, precision);
}

std::string shape_text(const std::array<std::int64_t, 3>& s) {
  return "[" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " +
         std::to_string(s[2]) + "]";
}

}  // namespace

std::string image_data_fingerprint(const datasets::ImageDataset& data,
                                   const TrainConfig& c) {
  const auto crc = [](const at::Tensor& t) {
    const at::Tensor flat = t.cpu().contiguous();
    return crc32_of(flat.data_ptr(), static_cast<std::size_t>(
                                         flat.numel() * flat.element_size()));
  };
  const auto s = data.shape();
  return nlohmann::json{{"examples", data.size()},
                        {"shape", {s[0], s[1], s[2]}},
                        {"classes", data.num_classes()},
                        {"class_subset", c.classes},
                        {"crc32_images", crc(data.images())},
                        {"crc32_labels", crc(data.labels())}}
      .dump();
}

InputNormalization input_normalization(const std::string& dataset_name,
                                       std::int64_t channels) {
  // Published per-channel statistics of the public benchmark data sets;
  // anything else uses a data-independent map to [-1, 1].
  if (dataset_name == "fashion-mnist" && channels == 1)
    return {{0.2860}, {0.3530}};
  if (dataset_name == "mnist" && channels == 1) return {{0.1307}, {0.3081}};
  if ((dataset_name == "cifar10" || dataset_name == "cifar-10") &&
      channels == 3) {
    return {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}};
  }
  return {std::vector<double>(channels, 0.5),
          std::vector<double>(channels, 0.5)};
}

struct ClassifierTrainer::State {
  std::shared_ptr<models::ImageClassifier> model;
  std::unique_ptr<PrivateLoop> loop;  // engine, optimizer, EMA, budget
  InputNormalization normalization;
  datasets::ChannelStats stats;
};

ClassifierTrainer::ClassifierTrainer(
    std::shared_ptr<models::ImageClassifier> model, ValidConfig config)
    : state_(std::make_unique<State>()) {
  if (!model) throw std::invalid_argument("ClassifierTrainer: model is null");
  state_->model = std::move(model);
  state_->loop = std::make_unique<PrivateLoop>(
      std::static_pointer_cast<torch::nn::Module>(state_->model),
      std::move(config));
  log = [](const std::string& line) { std::cout << line << std::endl; };
}

ClassifierTrainer::~ClassifierTrainer() = default;

const accountant::EventHistory& ClassifierTrainer::privacy_history() const {
  return state_->loop->privacy_history();
}

double ClassifierTrainer::epsilon() const { return state_->loop->epsilon(); }

bool ClassifierTrainer::save_weights(const std::string& path, bool use_ema) {
  auto& s = *state_;
  const AveragedParameters held(s.loop->optimization(), *s.model,
                                use_ema ? Average::kEma : Average::kNone);
  if (use_ema && !held.active()) return false;
  models::save_weights(*s.model, path);
  return true;
}

EvalResult ClassifierTrainer::evaluate(const datasets::ImageDataset& data,
                                       bool use_ema) {
  return evaluate(data, use_ema ? Iterate::kEma : Iterate::kLast);
}

EvalResult evaluate_classifier(models::ImageClassifier& model,
                               const datasets::ImageDataset& data,
                               const datasets::ChannelStats& stats,
                               c10::Device device) {
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
    const bool was_training = model.is_training();
    model.eval();
    for (std::int64_t start = 0; start < data.size(); start += kEvalBatch) {
      const auto end = std::min(data.size(), start + kEvalBatch);
      auto idx = torch::arange(start, end, torch::kLong);
      auto batch = data.get_batch(idx, device);
      auto x = datasets::standardize(batch.images, stats);
      auto logits = model.forward(x);
      auto labels = batch.labels;
      loss_sum +=
          torch::nn::functional::cross_entropy(
              logits, labels,
              torch::nn::functional::CrossEntropyFuncOptions().reduction(
                  torch::kSum))
              .item<double>();
      auto hit = (logits.argmax(1) == labels).to(torch::kCPU);
      auto labels_cpu = labels.to(torch::kCPU);
      auto groups_cpu = batch.groups.defined() ? batch.groups.to(torch::kCPU)
                                               : torch::Tensor();
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
    model.train(was_training);
  }
  r.loss = r.count > 0 ? loss_sum / static_cast<double>(r.count) : kNaN;
  r.accuracy = r.count > 0
                   ? static_cast<double>(correct) / static_cast<double>(r.count)
                   : kNaN;
  for (std::int64_t c = 0; c < classes; ++c) {
    r.per_class_accuracy.push_back(
        total_c[c] > 0 ? static_cast<double>(correct_c[c]) / total_c[c] : kNaN);
  }
  for (std::int64_t g = 0; g < groups; ++g) {
    r.per_group_accuracy.push_back(
        total_g[g] > 0 ? static_cast<double>(correct_g[g]) / total_g[g] : kNaN);
  }
  return r;
}

EvalResult ClassifierTrainer::evaluate(const datasets::ImageDataset& data,
                                       Iterate which) {
  auto& s = *state_;
  auto* optimization = s.loop->optimization();
  const AveragedParameters held(optimization, *s.model,
                                which == Iterate::kEma      ? Average::kEma
                                : which == Iterate::kPolyak ? Average::kPolyak
                                                            : Average::kNone);
  return evaluate_classifier(*s.model, data, s.stats, s.loop->device());
}

FitResult ClassifierTrainer::fit(const datasets::ImageDataset& train,
                                 const datasets::ImageDataset* eval) {
  auto& s = *state_;
  const auto& c = s.loop->config();
  const auto wall_start = std::chrono::steady_clock::now();
  const std::int64_t n = train.size();
  check_dataset_size(c, n);  // before the shape checks below
  if (train.shape()[0] != s.model->in_channels()) {
    throw std::invalid_argument("--model expects " +
                                std::to_string(s.model->in_channels()) +
                                " input channel(s), the data set has " +
                                std::to_string(train.shape()[0]));
  }
  if (train.num_classes() > s.model->num_classes()) {
    throw std::invalid_argument("the data set has " +
                                std::to_string(train.num_classes()) +
                                " classes, the model outputs " +
                                std::to_string(s.model->num_classes()));
  }
  s.normalization = input_normalization(c.dataset, train.shape()[0]);
  s.stats = {s.normalization.mean, s.normalization.std};

  if (eval != nullptr && eval->size() > 0) {
    // Checked now, not after the budget is spent on training.
    if (eval->shape() != train.shape()) {
      throw std::invalid_argument(
          "the evaluation images have shape " + shape_text(eval->shape()) +
          ", the training images " + shape_text(train.shape()) +
          " (train and test of --dataset "
          "must match)");
    }
    if (eval->num_classes() > s.model->num_classes()) {
      throw std::invalid_argument("the evaluation set has " +
                                  std::to_string(eval->num_classes()) +
                                  " classes, the model outputs " +
                                  std::to_string(s.model->num_classes()));
    }
  }

  std::mt19937_64 augment_rng(c.seed ? *c.seed + 1 : std::random_device{}());
  const std::int64_t k = std::max<std::int64_t>(1, c.augmult);
  const auto device = s.loop->device();
  const auto augment = augment_options(c);
  FitResult result;

  PrivateTask task;
  task.dataset_size = n;
  task.group_size = k;
  task.privacy_unit = "one example";
  task.data_fingerprint = image_data_fingerprint(train, c);
  task.losses = [&](const std::vector<std::int64_t>& chunk, LoopStats& stats) {
    datasets::Batch b = c.augmult > 0
                            ? datasets::get_augmented_batch(
                                  train, chunk, k, augment, augment_rng, device)
                            : train.get_batch(chunk, device);
    auto x = datasets::standardize(b.images, s.stats);
    auto logits = s.model->forward(x);
    auto losses = torch::nn::functional::cross_entropy(
        logits, b.labels,
        torch::nn::functional::CrossEntropyFuncOptions().reduction(
            torch::kNone));
    torch::NoGradGuard ng;
    stats.loss_sum += losses.sum().item<double>() / static_cast<double>(k);
    stats.correct += (logits.argmax(1) == b.labels).sum().item<std::int64_t>();
    stats.count += static_cast<std::int64_t>(chunk.size());
    return losses;
  };
  // A split of the training data is private and not noised (invariant 9).
  const bool private_eval = c.validation_fraction > 0;
  const std::string eval_name =
      private_eval ? "validation (private, not noised)" : "test";
  const std::string eval_key = private_eval ? "validation" : "test";
  task.end_epoch = [&](const EpochContext& ctx) {
    EpochRecord rec;
    rec.epoch = ctx.epoch;
    rec.step = ctx.step;
    const auto count = ctx.stats.count;
    rec.train_loss =
        count ? ctx.stats.loss_sum / static_cast<double>(count) : kNaN;
    rec.train_accuracy = count ? static_cast<double>(ctx.stats.correct) /
                                     static_cast<double>(count * k)
                               : kNaN;
    if (eval != nullptr) {
      rec.test = evaluate(*eval, false);
      if (s.loop->optimization()->has_ema())
        rec.ema_test = evaluate(*eval, Iterate::kEma);
      if (s.loop->optimization()->polyak_updates() > 0) {
        rec.polyak_test = evaluate(*eval, Iterate::kPolyak);
      }
    }
    rec.epsilon = ctx.epsilon;
    rec.seconds = ctx.seconds;
    std::ostringstream line;
    line << "epoch " << rec.epoch << " step " << rec.step << ": train loss "
         << fmt(rec.train_loss) << " acc " << fmt(rec.train_accuracy)
         << " (non-private)";
    if (eval != nullptr) {
      line << ", " << eval_name << " acc " << fmt(rec.test.accuracy);
      if (rec.ema_test.count > 0)
        line << ", ema " << eval_name << " acc " << fmt(rec.ema_test.accuracy);
      if (rec.polyak_test.count > 0) {
        line << ", polyak " << eval_name << " acc "
             << fmt(rec.polyak_test.accuracy);
      }
    }
    line << ", epsilon " << fmt(rec.epsilon) << ", " << fmt(rec.seconds, 1)
         << " s";
    nlohmann::json j = {{"epoch", rec.epoch},
                        {"step", rec.step},
                        {"train_loss_nonprivate", rec.train_loss},
                        {"train_accuracy_nonprivate", rec.train_accuracy},
                        {"epsilon", rec.epsilon},
                        {"delta", c.delta},
                        {"seconds", rec.seconds}};
    if (eval != nullptr) {
      j[eval_key + "_accuracy"] = rec.test.accuracy;
      j[eval_key + "_loss"] = rec.test.loss;
      if (rec.ema_test.count > 0)
        j["ema_" + eval_key + "_accuracy"] = rec.ema_test.accuracy;
      if (rec.polyak_test.count > 0) {
        j["polyak_" + eval_key + "_accuracy"] = rec.polyak_test.accuracy;
      }
    }
    result.epochs.push_back(rec);
    if (on_epoch) on_epoch(rec);
    return EpochOutput{line.str(), j.dump()};
  };
  // The augmentation generator is part of the run's state: a resumed run
  // draws the same views as an uninterrupted one.
  task.save = [&](torch::serialize::OutputArchive& out) {
    std::ostringstream rng_out;
    rng_out << augment_rng;
    out.write("augment_rng", c10::IValue(rng_out.str()));
  };
  task.load = [&](torch::serialize::InputArchive& in) {
    c10::IValue value;
    in.read("augment_rng", value);
    std::istringstream rng_in(value.toStringRef());
    std::mt19937_64 saved_rng;
    rng_in >> saved_rng;
    augment_rng = saved_rng;
  };

  s.loop->log = log;
  const LoopResult loop = s.loop->run(task);
  static_cast<LoopResult&>(result) = loop;
  if (eval != nullptr) {
    result.test =
        result.epochs.empty() || result.epochs.back().step != loop.steps
            ? evaluate(*eval, false)
            : result.epochs.back().test;
    if (s.loop->optimization()->has_ema())
      result.ema_test = evaluate(*eval, Iterate::kEma);
    if (s.loop->optimization()->polyak_updates() > 0) {
      result.polyak_test = evaluate(*eval, Iterate::kPolyak);
    }
  }
  result.wall_seconds = std::chrono::duration<double>(
                            std::chrono::steady_clock::now() - wall_start)
                            .count();
  return result;
}

std::string summary_json(const FitResult& r, const TrainConfig& c) {
  auto vec = [&](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(nan_to_null(x));
    return a;
  };
  // A validation split carved from the training data is private data, not
  // noised: it is never called "test" (privacy invariant 9).
  const std::string eval = c.validation_fraction > 0 ? "validation" : "test";
  nlohmann::json j = nlohmann::json::parse(privacy_summary_json(r, c));
  j.update({
      {eval + "_accuracy", nan_to_null(r.test.count ? r.test.accuracy : kNaN)},
      {"ema_" + eval + "_accuracy",
       nan_to_null(r.ema_test.count ? r.ema_test.accuracy : kNaN)},
      {"polyak_" + eval + "_accuracy",
       nan_to_null(r.polyak_test.count ? r.polyak_test.accuracy : kNaN)},
      {"adjacency", "add_remove_one_example"},
      {"per_class_accuracy", vec(r.test.per_class_accuracy)},
      {"ema_per_class_accuracy", vec(r.ema_test.per_class_accuracy)},
      {"per_group_accuracy", vec(r.test.per_group_accuracy)},
      {"wall_seconds", r.wall_seconds},
      {"config", nlohmann::json::parse(to_json(c))},
  });
  if (c.validation_fraction > 0) {
    j["validation_note"] =
        "validation (private, not noised): carved from the private training "
        "data and "
        "evaluated without noise; its figures are not differentially private";
  }
  return j.dump();
}

}  // namespace dptrain::train
