#include "dptrain/train/diffusion_evaluation.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>
#include <utility>

#include "dptrain/datasets/dataset_info.h"
#include "dptrain/datasets/subsets.h"
#include "dptrain/models/feature_cnn.h"
#include "dptrain/models/fid.h"
#include "dptrain/models/fid_inception.h"
#include "dptrain/models/registry.h"
#include "dptrain/models/weights.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/outputs.h"
#include "dptrain/train/progress.h"
#include "dptrain/train/runtime.h"
#include "json_number.h"

namespace dptrain::train {
namespace {

constexpr std::int64_t kFeatureBatch = 256;

// The data-independent map of images to [-1, 1] the feature-cnn is trained
// and read with, whatever the data set.
datasets::ChannelStats unit_range_stats(std::int64_t channels) {
  const std::vector<double> half(static_cast<std::size_t>(channels), 0.5);
  return {half, half};
}

datasets::ChannelStats stats_of(const InputNormalization& n) {
  return {n.mean, n.std};
}

void require_file(const std::string& flag, const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw std::invalid_argument(flag + " '" + path + "': no such file");
  }
}

datasets::ImageDataset load_split(const std::string& flag,
                                  const std::string& name,
                                  const std::string& split) {
  std::string path;
  try {
    path = datasets::resolve_dataset_path(name);
  } catch (const std::exception& e) {
    throw std::invalid_argument(flag + " '" + name + "': " + e.what());
  }
  const auto splits = datasets::list_splits(path);
  if (std::find(splits.begin(), splits.end(), split) == splits.end()) {
    std::string list;
    for (const auto& s : splits) list += (list.empty() ? "" : ", ") + s;
    throw std::invalid_argument(flag + " '" + name + "' has no \"" + split +
                                "\" split (it has: " + list + ")");
  }
  return datasets::load_dataset(path, split);
}

datasets::ImageDataset keep_classes(const std::string& flag,
                                    const datasets::ImageDataset& data,
                                    const std::vector<std::int64_t>& classes) {
  if (classes.empty()) return data;
  try {
    return datasets::subset_by_classes(data, classes);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(flag + ": " + std::string(e.what()));
  }
}

// The first `limit` examples of a seeded shuffle (all when limit is 0 or
// larger than the set).
datasets::ImageDataset first_of_shuffle(const datasets::ImageDataset& data,
                                        std::int64_t limit,
                                        std::uint64_t seed) {
  if (limit <= 0 || limit >= data.size()) return data;
  auto order = datasets::seeded_permutation(data.size(), seed);
  order.resize(static_cast<std::size_t>(limit));
  std::sort(order.begin(), order.end());
  return data.subset(order);
}

template <typename Features>
models::GaussianStats statistics_of(const datasets::ImageDataset& data,
                                    c10::Device device, Features&& features) {
  models::FeatureStatisticsAccumulator acc;
  torch::NoGradGuard no_grad;
  for (std::int64_t start = 0; start < data.size(); start += kFeatureBatch) {
    const auto end = std::min(data.size(), start + kFeatureBatch);
    const auto batch =
        data.get_batch(torch::arange(start, end, torch::kLong), device);
    acc.add(features(batch.images).to(torch::kCPU).to(torch::kDouble));
  }
  return acc.statistics();
}

models::FeatureCnnImpl& as_feature_cnn(models::ImageClassifier& model) {
  auto* cnn = dynamic_cast<models::FeatureCnnImpl*>(&model);
  if (cnn == nullptr) {
    throw std::logic_error("feature-cnn is not a FeatureCnnImpl");
  }
  return *cnn;
}

nlohmann::json read_sidecar(const std::string& synthetic) {
  std::ifstream in(synthetic + ".json");
  if (!in) return nullptr;
  try {
    nlohmann::json j;
    in >> j;
    return j.is_object() ? j : nlohmann::json(nullptr);
  } catch (const std::exception&) {
    throw std::invalid_argument("--synthetic '" + synthetic +
                                "': its sidecar '" + synthetic +
                                ".json' is not JSON");
  }
}

}  // namespace

void PlainTrainingOptions::validate(const std::string& prefix) const {
  if (epochs < 1 || epochs > 100000) {
    throw std::invalid_argument(prefix + "epochs must be in [1, 100000], got " +
                                std::to_string(epochs));
  }
  if (batch_size < 1) {
    throw std::invalid_argument(prefix + "batch-size must be >= 1, got " +
                                std::to_string(batch_size));
  }
  if (!std::isfinite(lr) || lr <= 0) {
    throw std::invalid_argument(prefix + "lr must be finite and > 0, got " +
                                std::to_string(lr));
  }
}

std::vector<double> train_classifier_plainly(
    models::ImageClassifier& model, const datasets::ImageDataset& data,
    const datasets::ChannelStats& stats, c10::Device device,
    const PlainTrainingOptions& options,
    const std::function<void(std::int64_t)>& on_epoch) {
  options.validate();
  if (data.size() < 1) {
    throw std::invalid_argument("no training examples");
  }
  model.to(device);
  model.train();
  torch::optim::Adam optimizer(model.parameters(),
                               torch::optim::AdamOptions(options.lr));
  std::vector<double> losses;
  const std::int64_t batches =
      (data.size() + options.batch_size - 1) / options.batch_size;
  ProgressBar bar("training", options.epochs * batches);  // terminals only
  for (std::int64_t epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto order = datasets::seeded_permutation(
        data.size(), options.seed + static_cast<std::uint64_t>(epoch));
    double loss_sum = 0.0;
    for (std::size_t start = 0; start < order.size();
         start += static_cast<std::size_t>(options.batch_size)) {
      const auto end = std::min(
          order.size(), start + static_cast<std::size_t>(options.batch_size));
      const std::vector<std::int64_t> idx(order.begin() + start,
                                          order.begin() + end);
      const auto batch = data.get_batch(idx, device);
      const auto logits =
          model.forward(datasets::standardize(batch.images, stats));
      const auto loss =
          torch::nn::functional::cross_entropy(logits, batch.labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>() * static_cast<double>(idx.size());
      bar.update((epoch - 1) * batches +
                     static_cast<std::int64_t>(start) / options.batch_size + 1,
                 "epoch " + std::to_string(epoch));
    }
    losses.push_back(loss_sum / static_cast<double>(data.size()));
    if (on_epoch) on_epoch(epoch);
  }
  bar.finish();
  model.eval();
  return losses;
}

std::string run_diffusion_evaluation(const EvaluationRun& run) {
  // Every input is checked before the first (slow) training epoch.
  if (run.synthetic.empty())
    throw std::invalid_argument("--synthetic is required");
  if (run.real.empty()) throw std::invalid_argument("--real is required");
  require_file("--synthetic", run.synthetic);
  run.training.validate("--");
  if (!std::isfinite(run.validation_fraction) || run.validation_fraction < 0 ||
      run.validation_fraction >= 1) {
    throw std::invalid_argument(
        "--validation-fraction must be in [0, 1), got " +
        std::to_string(run.validation_fraction));
  }
  if (run.fid_samples < 0 || run.fid_samples == 1) {
    throw std::invalid_argument("--fid-samples must be 0 (all) or >= 2, got " +
                                std::to_string(run.fid_samples));
  }
  if (!run.inception_weights.empty()) {
    require_file("--inception-weights", run.inception_weights);
  }
  if (!run.feature_weights.empty() && !run.feature_dataset.empty()) {
    throw std::invalid_argument(
        "give --feature-weights or --feature-dataset, not both");
  }
  if (!run.feature_weights.empty()) {
    require_file("--feature-weights", run.feature_weights);
  }
  if (!run.save_feature_weights.empty() && run.feature_dataset.empty()) {
    throw std::invalid_argument(
        "--save-feature-weights needs --feature-dataset (the feature network "
        "is trained only then)");
  }
  if (!run.feature_dataset.empty()) {
    run.feature_training.validate("--feature-");
  }
  check_run_files({{"--json", run.json},
                   {"--save-feature-weights", run.save_feature_weights}},
                  {{"--synthetic", run.synthetic},
                   {"--inception-weights", run.inception_weights},
                   {"--feature-weights", run.feature_weights}});
  const auto classifiers = models::list_models();
  if (std::find(classifiers.begin(), classifiers.end(), run.classifier) ==
      classifiers.end()) {
    throw std::invalid_argument("--classifier '" + run.classifier +
                                "' is not an image model (see `dptrain model "
                                "list`)");
  }
  const c10::Device device = parse_device(run.device);

  const auto synthetic = load_split("--synthetic", run.synthetic, "train");
  const auto real = keep_classes(
      "--classes", load_split("--real", run.real, "test"), run.classes);
  if (synthetic.shape() != real.shape()) {
    const auto text = [](const std::array<std::int64_t, 3>& s) {
      return std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" +
             std::to_string(s[2]);
    };
    throw std::invalid_argument("--synthetic images are " +
                                text(synthetic.shape()) + ", --real's " +
                                text(real.shape()));
  }
  const std::int64_t num_classes = real.num_classes();
  if (synthetic.num_classes() > num_classes) {
    const auto max_label = synthetic.labels().max().item<std::int64_t>();
    if (max_label >= num_classes) {
      throw std::invalid_argument(
          "--synthetic has label " + std::to_string(max_label) +
          ", but --real" + (run.classes.empty() ? "" : " with --classes") +
          " has " + std::to_string(num_classes) +
          " classes (sampled with other --classes?)");
    }
  }
  const auto channels = real.shape()[0];
  const auto image_size = real.shape()[1];
  const auto sidecar = read_sidecar(run.synthetic);

  // Downstream accuracy: train on synthetic data only, pick the epoch on
  // held-out synthetic data, test on the real test split.
  const auto start = std::chrono::steady_clock::now();
  const auto normalization = stats_of(input_normalization(run.real, channels));
  const auto n_val = static_cast<std::int64_t>(std::llround(
      run.validation_fraction * static_cast<double>(synthetic.size())));
  if (synthetic.size() - n_val < 1) {
    throw std::invalid_argument("--synthetic has " +
                                std::to_string(synthetic.size()) +
                                " images: too few to train on");
  }
  // The real set's class count on both parts: labels the synthetic set does
  // not have still get a head row and a per-class entry.
  const auto parts = datasets::split_train_validation(
      datasets::ImageDataset(synthetic.images(), synthetic.labels(),
                             num_classes, {}, synthetic.name()),
      n_val, run.training.seed);
  // Plain references, not structured bindings: a lambda below captures them
  // (C++17 does not allow capturing a structured binding).
  const datasets::ImageDataset& synthetic_train = parts.first;
  const datasets::ImageDataset& synthetic_val = parts.second;
  torch::manual_seed(run.training.seed);
  auto classifier =
      models::make_model(run.classifier, models::ModelOptions()
                                             .num_classes(num_classes)
                                             .in_channels(channels)
                                             .image_size(image_size));
  nlohmann::json epochs = nlohmann::json::array();
  std::int64_t best_epoch = 0;
  double best_val = -1.0;
  EvalResult best_test;
  const auto on_epoch = [&](std::int64_t epoch) {
    const EvalResult test =
        evaluate_classifier(*classifier, real, normalization, device);
    double val = std::numeric_limits<double>::quiet_NaN();
    if (n_val > 0) {
      val =
          evaluate_classifier(*classifier, synthetic_val, normalization, device)
              .accuracy;
    }
    epochs.push_back({{"epoch", epoch},
                      {"test_accuracy", test.accuracy},
                      {"synthetic_validation_accuracy", nan_to_null(val)}});
    // Without held-out data the last epoch is reported.
    if (n_val == 0 || val > best_val) {
      best_val = n_val == 0 ? best_val : val;
      best_epoch = epoch;
      best_test = test;
    }
    classifier->train();
  };
  train_classifier_plainly(*classifier, synthetic_train, normalization, device,
                           run.training, on_epoch);
  nlohmann::json per_class = nlohmann::json::array();
  for (double a : best_test.per_class_accuracy)
    per_class.push_back(nan_to_null(a));

  nlohmann::json out = {
      {"synthetic", run.synthetic},
      {"real", run.real},
      {"real_split", "test"},
      {"classes", run.classes},
      {"num_classes", num_classes},
      {"synthetic_examples", synthetic.size()},
      {"real_test_examples", real.size()},
      {"classifier", run.classifier},
      {"epochs", run.training.epochs},
      {"batch_size", run.training.batch_size},
      {"lr", run.training.lr},
      {"seed", run.training.seed},
      {"validation_fraction", run.validation_fraction},
      {"epoch_chosen", best_epoch},
      {"epoch_chosen_by",
       n_val > 0 ? "held-out synthetic validation accuracy" : "last epoch"},
      {"downstream_accuracy", best_test.accuracy},
      {"per_class_accuracy", per_class},
      {"epoch_accuracies", epochs},
  };

  // FID on each network asked for: synthetic "train" vs real test images.
  const auto fid_real =
      first_of_shuffle(real, run.fid_samples, run.training.seed);
  const auto fid_synthetic =
      first_of_shuffle(synthetic, run.fid_samples, run.training.seed + 1);
  if (!run.feature_weights.empty() || !run.feature_dataset.empty()) {
    torch::manual_seed(run.feature_training.seed);
    std::int64_t feature_classes = 10;
    datasets::ImageDataset public_data;
    if (!run.feature_dataset.empty()) {
      public_data = keep_classes(
          "--feature-classes",
          load_split("--feature-dataset", run.feature_dataset, "train"),
          run.feature_classes);
      if (public_data.shape() != real.shape()) {
        throw std::invalid_argument(
            "--feature-dataset images have another shape than --real's");
      }
      feature_classes = public_data.num_classes();
    }
    auto net =
        models::make_model("feature-cnn", models::ModelOptions()
                                              .num_classes(feature_classes)
                                              .in_channels(channels)
                                              .image_size(image_size));
    if (!run.feature_weights.empty()) {
      // The features come before the head: a head of another class count
      // (the public set's) is not read.
      models::LoadOptions load;
      load.exclude = "^classifier\\.";
      try {
        models::load_weights(*net, run.feature_weights, load);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("--feature-weights '" +
                                    run.feature_weights + "': " + e.what());
      }
      net->to(device);
    } else {
      train_classifier_plainly(*net, public_data, unit_range_stats(channels),
                               device, run.feature_training);
      if (!run.save_feature_weights.empty()) {
        models::save_weights(*net, run.save_feature_weights);
      }
    }
    net->eval();
    auto& cnn = as_feature_cnn(*net);
    const auto stats = unit_range_stats(channels);
    const auto features = [&](const at::Tensor& images) {
      return cnn.features(datasets::standardize(images, stats));
    };
    const double fid =
        models::frechet_distance(statistics_of(fid_synthetic, device, features),
                                 statistics_of(fid_real, device, features));
    out["fid_feature_cnn"] = fid;
    out["feature_cnn"] = {
        {"weights", run.feature_weights.empty() ? run.save_feature_weights
                                                : run.feature_weights},
        {"trained_on", run.feature_dataset.empty()
                           ? nlohmann::json(nullptr)
                           : nlohmann::json(run.feature_dataset)},
        {"trained_on_classes", run.feature_classes},
        {"note",
         "built-in feature network: not comparable with papers' FIDs "
         "(InceptionV3), only with figures on the same feature weights"}};
    out["fid"] = fid;
    out["fid_network"] = "feature-cnn";
  }
  if (!run.inception_weights.empty()) {
    models::FidInceptionV3 inception;
    try {
      models::load_fid_inception_weights(*inception, run.inception_weights);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("--inception-weights '" +
                                  run.inception_weights + "': " + e.what());
    }
    inception->to(device);
    inception->eval();
    const auto features = [&](const at::Tensor& images) {
      return inception->forward(images.to(torch::kFloat).div(255.0));
    };
    const double fid =
        models::frechet_distance(statistics_of(fid_synthetic, device, features),
                                 statistics_of(fid_real, device, features));
    out["fid_inception"] = fid;
    out["fid"] = fid;
    out["fid_network"] = "inception-v3 (pytorch-fid layout)";
  }
  if (out.contains("fid")) {
    out["fid_samples"] = {{"synthetic", fid_synthetic.size()},
                          {"real", fid_real.size()}};
  } else {
    out["fid"] = nullptr;
    out["fid_note"] =
        "no FID: give --inception-weights and/or --feature-weights or "
        "--feature-dataset";
  }
  if (sidecar.is_object() && sidecar.contains("epsilon")) {
    out["epsilon"] = sidecar["epsilon"];
    out["delta"] = sidecar.value("delta", nlohmann::json(nullptr));
    out["privacy"] =
        "the synthetic set's (epsilon, delta) from its sidecar; training on "
        "it is post-processing. The figures read the real test split.";
  } else {
    out["privacy"] =
        "unknown: --synthetic has no .json sidecar with an epsilon";
  }
  out["wall_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  const std::string text = out.dump();
  if (!run.json.empty()) write_file_atomically(run.json, out.dump(2) + "\n");
  return text;
}

}  // namespace dptrain::train
