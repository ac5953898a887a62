#include "dptrain/train/diffusion_sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <utility>

#include "dptrain/datasets/hdf5_writer.h"
#include "dptrain/datasets/png_writer.h"
#include "dptrain/models/diffusion.h"
#include "dptrain/models/diffusion_samplers.h"
#include "dptrain/models/registry.h"
#include "dptrain/models/weights.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/diffusion_trainer.h"
#include "dptrain/train/outputs.h"
#include "dptrain/train/progress.h"
#include "dptrain/train/runtime.h"

namespace dptrain::train {
namespace {

std::string ext_of(const std::string& path) {
  std::string e = std::filesystem::path(path).extension().string();
  std::transform(e.begin(), e.end(), e.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  return e;
}

// splitmix64: the seed of row i's generator, so that a row's noise depends
// on (seed, i) only, not on the batch it is sampled in.
std::uint64_t row_seed(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// The (ε, δ) of the fine-tuning run whose weights are sampled.
nlohmann::json read_privacy_summary(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    throw std::invalid_argument("--privacy-summary '" + path +
                                "': cannot read the file");
  }
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    throw std::invalid_argument("--privacy-summary '" + path + "': not JSON (" +
                                e.what() + ")");
  }
  if (!j.is_object() || j.value("task", "") != "diffusion" ||
      !j.contains("epsilon") || !j.contains("delta") ||
      !j["delta"].is_number()) {
    throw std::invalid_argument(
        "--privacy-summary '" + path +
        "': not the summary of `dptrain diffusion finetune` (needs \"task\": "
        "\"diffusion\", \"epsilon\" and \"delta\")");
  }
  return j;
}

}  // namespace

std::vector<std::int64_t> balanced_labels(
    std::int64_t n, const std::vector<std::int64_t>& classes) {
  if (classes.empty()) {
    throw std::invalid_argument("balanced_labels: no classes");
  }
  const auto k = static_cast<std::int64_t>(classes.size());
  std::vector<std::int64_t> labels;
  labels.reserve(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  for (std::int64_t c = 0; c < k; ++c) {
    const std::int64_t count = n / k + (c < n % k ? 1 : 0);
    labels.insert(labels.end(), static_cast<std::size_t>(count),
                  classes[static_cast<std::size_t>(c)]);
  }
  return labels;
}

void SampleOptions::validate() const {
  if (sampler != "heun" && sampler != "churn" && sampler != "ddim") {
    throw std::invalid_argument(
        "--sampler must be one of heun, churn, ddim, got '" + sampler + "'");
  }
  if (!std::isfinite(churn) || churn < 0) {
    throw std::invalid_argument("--churn must be finite and >= 0, got " +
                                std::to_string(churn));
  }
  if (steps < 1 || steps > 10000) {
    throw std::invalid_argument("--steps must be in [1, 10000], got " +
                                std::to_string(steps));
  }
  if (!std::isfinite(guidance) || guidance < 0) {
    throw std::invalid_argument("--guidance must be finite and >= 0, got " +
                                std::to_string(guidance));
  }
  if (batch_size < 1) {
    throw std::invalid_argument("--batch-size must be >= 1, got " +
                                std::to_string(batch_size));
  }
  if (!std::isfinite(sigma_data) || sigma_data <= 0) {
    throw std::invalid_argument("--sigma-data must be > 0, got " +
                                std::to_string(sigma_data));
  }
}

at::Tensor sample_images(models::UNet& net, const at::Tensor& labels,
                         const SampleOptions& options) {
  options.validate();
  const auto& cfg = net->config();
  const std::int64_t n = labels.size(0);
  const auto device = net->parameters().front().device();
  const auto cpu_labels = labels.to(torch::kCPU).to(torch::kLong);
  models::EdmOptions edm;
  edm.sigma_data = options.sigma_data;
  edm.parameterization = options.parameterization;
  models::HeunOptions heun;
  heun.steps = options.steps;
  const bool was_training = net->is_training();
  net->eval();
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  ProgressBar bar("sampling", n);  // drawn on terminals only
  for (std::int64_t start = 0; start < n; start += options.batch_size) {
    const std::int64_t rows = std::min(options.batch_size, n - start);
    auto z = torch::empty(
        {rows, cfg.in_channels, cfg.image_size, cfg.image_size}, torch::kFloat);
    for (std::int64_t r = 0; r < rows; ++r) {
      at::Generator gen = at::detail::createCPUGenerator(
          row_seed(options.seed, static_cast<std::uint64_t>(start + r)));
      z[r].normal_(0.0, 1.0, gen);
    }
    const auto batch_labels = cpu_labels.narrow(0, start, rows).to(device);
    const auto denoiser =
        models::guided_denoiser(net, batch_labels, options.guidance, edm);
    at::Tensor x;
    if (options.sampler == "ddim") {
      models::DdimOptions ddim;
      ddim.schedule = heun;
      x = models::ddim_sample(denoiser, z.to(device), ddim);
    } else if (options.sampler == "churn") {
      models::StochasticSamplerOptions churn;
      churn.schedule = heun;
      churn.s_churn = options.churn;
      churn.s_tmin = 0.05;
      churn.s_tmax = 50.0;
      churn.s_noise = 1.003;
      // The batch's fresh noise: its own stream of the seed, after the rows'.
      at::Generator gen = at::detail::createCPUGenerator(row_seed(
          options.seed ^ 0x636875726eULL, static_cast<std::uint64_t>(start)));
      x = models::stochastic_sample(denoiser, z.to(device), churn, gen);
    } else {
      x = models::heun_sample(denoiser, z.to(device), heun);
    }
    out.push_back(from_diffusion_range(x).to(torch::kCPU));
    bar.update(start + rows, "images");
  }
  bar.finish();
  net->train(was_training);
  if (out.empty()) {
    return torch::empty({0, cfg.in_channels, cfg.image_size, cfg.image_size},
                        torch::kUInt8);
  }
  return torch::cat(out, 0);
}

std::string run_diffusion_sampling(const SampleRun& run) {
  // Every input is checked before the first (slow) sampler call.
  run.sampler.validate();
  const auto names = models::list_diffusion_models();
  if (std::find(names.begin(), names.end(), run.model) == names.end()) {
    std::string list;
    for (const auto& m : names) list += (list.empty() ? "" : ", ") + m;
    throw std::invalid_argument("--model '" + run.model +
                                "' is not a diffusion model; one of " + list);
  }
  if (run.num_samples < 1) {
    throw std::invalid_argument("--num-samples must be >= 1, got " +
                                std::to_string(run.num_samples));
  }
  if (run.test_samples < 0) {
    throw std::invalid_argument("--test-samples must be >= 0, got " +
                                std::to_string(run.test_samples));
  }
  if (run.out.empty()) throw std::invalid_argument("--out is required");
  const auto out_ext = ext_of(run.out);
  if (out_ext != ".h5" && out_ext != ".hdf5") {
    throw std::invalid_argument("--out '" + run.out +
                                "' must end .h5 or .hdf5");
  }
  if (!run.grid.empty()) {
    if (ext_of(run.grid) != ".png") {
      throw std::invalid_argument("--grid '" + run.grid + "' must end .png");
    }
    if (run.grid_columns < 1) {
      throw std::invalid_argument("--grid-columns must be >= 1, got " +
                                  std::to_string(run.grid_columns));
    }
  }
  if (run.weights.empty()) {
    throw std::invalid_argument("--weights is required");
  }
  if (!std::filesystem::is_regular_file(run.weights)) {
    throw std::invalid_argument("--weights '" + run.weights +
                                "': no such file");
  }
  // No output may replace an input or another output.
  check_run_files(
      {{"--out", run.out},
       {"--out (its .json sidecar)", run.out + ".json"},
       {"--grid", run.grid}},
      {{"--weights", run.weights}, {"--privacy-summary", run.privacy_summary}});
  nlohmann::json privacy;
  bool weights_verified = false;
  if (!run.privacy_summary.empty()) {
    privacy = read_privacy_summary(run.privacy_summary);
    if (privacy.contains("weights_crc32") &&
        privacy["weights_crc32"].is_object()) {
      const std::uint32_t crc = file_crc32(run.weights);
      for (const auto& [path, value] : privacy["weights_crc32"].items()) {
        weights_verified =
            weights_verified ||
            (value.is_number() && value.get<std::uint32_t>() == crc);
      }
      if (!weights_verified) {
        throw std::invalid_argument(
            "--weights '" + run.weights +
            "' is none of the weights files the run of --privacy-summary '" +
            run.privacy_summary +
            "' wrote (CRC-32 mismatch): the samples would carry another "
            "run's (epsilon, delta)");
      }
    }
  }
  // The objective the weights were trained with: a v-prediction network
  // read with EDM's preconditioning (or the reverse) gives noise, not images.
  std::string objective = run.objective;
  if (privacy.is_object() && privacy.contains("diffusion") &&
      privacy["diffusion"].is_object() &&
      privacy["diffusion"].contains("diffusion_objective")) {
    const auto trained =
        privacy["diffusion"]["diffusion_objective"].get<std::string>();
    if (!objective.empty() && objective != trained) {
      throw std::invalid_argument(
          "--objective " + objective + ": the run of --privacy-summary '" +
          run.privacy_summary + "' trained with --diffusion-objective " +
          trained);
    }
    objective = trained;
  }
  if (objective.empty()) objective = "edm";
  if (objective != "edm" && objective != "v") {
    throw std::invalid_argument("--objective must be edm or v, got '" +
                                objective + "'");
  }
  std::int64_t num_classes = run.num_classes;
  if (num_classes == 0) {
    num_classes = privacy.is_object() && privacy.contains("num_classes")
                      ? privacy["num_classes"].get<std::int64_t>()
                      : 10;
  }
  if (num_classes < 1 || num_classes > 65536) {
    throw std::invalid_argument("--num-classes must be in [1, 65536], got " +
                                std::to_string(num_classes));
  }
  std::vector<std::int64_t> classes = run.classes;
  if (classes.empty()) {
    for (std::int64_t c = 0; c < num_classes; ++c) classes.push_back(c);
  }
  for (std::size_t i = 0; i < classes.size(); ++i) {
    if (classes[i] < 0 || classes[i] >= num_classes) {
      throw std::invalid_argument(
          "--classes must list labels in [0, " + std::to_string(num_classes) +
          ") (the model's classes), got " + std::to_string(classes[i]));
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (classes[j] == classes[i]) {
        throw std::invalid_argument("--classes must not repeat a class, got " +
                                    std::to_string(classes[i]));
      }
    }
  }

  models::UNetConfig cfg = models::unet_config(run.model);
  cfg.num_classes = num_classes;
  if (run.channels > 0) cfg.in_channels = run.channels;
  const auto device = parse_device(run.device);
  models::UNet net(cfg);
  try {
    models::load_weights(*net, run.weights);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(
        "--weights '" + run.weights + "': " + e.what() +
        " (trained with another --model, --num-classes or --channels?)");
  }
  net->to(device);

  SampleOptions options = run.sampler;
  options.parameterization = diffusion_objective(objective);
  options.seed = run.seed ? *run.seed : std::random_device{}();
  const auto start = std::chrono::steady_clock::now();
  const auto sample_split = [&](std::int64_t n, std::uint64_t seed) {
    const auto list = balanced_labels(n, classes);
    const auto labels = torch::tensor(list, torch::kLong);
    SampleOptions o = options;
    o.seed = seed;
    return datasets::ImageDataset(sample_images(net, labels, o), labels,
                                  num_classes, {}, run.out);
  };
  std::vector<datasets::Hdf5Split> splits;
  splits.push_back({"train", sample_split(run.num_samples, options.seed)});
  if (run.test_samples > 0) {
    splits.push_back({"test", sample_split(run.test_samples,
                                           row_seed(options.seed, ~0ULL))});
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();

  nlohmann::json info = {
      {"synthetic", true},
      {"model", run.model},
      {"weights", run.weights},
      {"num_classes", num_classes},
      {"classes", classes},
      {"num_samples", run.num_samples},
      {"test_samples", run.test_samples},
      {"sampler", options.sampler == "heun"    ? "edm-heun"
                  : options.sampler == "churn" ? "edm-stochastic (churn)"
                                               : "ddim"},
      {"churn", options.sampler == "churn" ? nlohmann::json(options.churn)
                                           : nlohmann::json(nullptr)},
      {"steps", options.steps},
      {"guidance", options.guidance},
      {"objective", objective},
      {"seed", options.seed},
      {"seeded", run.seed.has_value()},
      {"sampling_seconds", seconds},
      {"images_per_second",
       static_cast<double>(run.num_samples + run.test_samples) /
           std::max(seconds, 1e-9)},
      {"out", run.out},
  };
  datasets::Hdf5WriteOptions attributes;
  if (privacy.is_object()) {
    info["epsilon"] = privacy["epsilon"];
    info["delta"] = privacy["delta"];
    info["privacy_summary"] = run.privacy_summary;
    info["weights_verified"] = weights_verified;
    if (!weights_verified) {
      info["weights_note"] =
          "--privacy-summary lists no weights_crc32: that --weights come from "
          "that run is not checked";
    }
    info["privacy"] =
        "post-processing of a (epsilon, delta)-DP fine-tuning run: these "
        "samples, and anything trained or tuned on them, carry the same "
        "(epsilon, delta)";
    if (privacy.value("seeded", false)) {
      info["training_seeded"] =
          "the fine-tuning run was seeded: reproducible, "
          "not for release";
    }
    if (privacy["epsilon"].is_number()) {
      attributes.number_attributes.emplace_back(
          "epsilon", privacy["epsilon"].get<double>());
    }
    attributes.number_attributes.emplace_back("delta",
                                              privacy["delta"].get<double>());
    attributes.string_attributes.emplace_back(
        "privacy", info["privacy"].get<std::string>());
  } else {
    info["privacy"] =
        "unknown: no --privacy-summary given; these samples carry whatever "
        "guarantee the run that trained --weights has";
    attributes.string_attributes.emplace_back(
        "privacy", info["privacy"].get<std::string>());
  }
  attributes.string_attributes.emplace_back("dptrain_synthetic", info.dump());
  datasets::write_hdf5(run.out, splits, attributes);
  if (!run.grid.empty()) {
    const auto& train = splits.front().data;
    // Rows: the requested classes in order, relabelled to their position.
    auto row_of = torch::full({num_classes}, -1, torch::kLong);
    for (std::size_t i = 0; i < classes.size(); ++i) {
      row_of[classes[i]].fill_(static_cast<std::int64_t>(i));
    }
    datasets::write_png(
        run.grid,
        datasets::class_grid(
            train.images(), row_of.index_select(0, train.labels()),
            static_cast<std::int64_t>(classes.size()), run.grid_columns));
    info["grid"] = run.grid;
  }
  write_file_atomically(run.out + ".json", info.dump(2) + "\n");
  return info.dump();
}

}  // namespace dptrain::train
