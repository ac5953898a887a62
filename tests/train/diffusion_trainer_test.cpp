// The diffusion task of the private loop: K noise draws of one example are
// one privacy unit (checked against a float64 computation by hand), label
// dropout, the draw generator in the checkpoint, a private run's summary,
// non-private pre-training, sampling, and the config's diffusion fields.
#include "dptrain/train/diffusion_trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "dptrain/datasets/hdf5_reader.h"
#include "dptrain/dp/clipping/clipping.h"
#include "dptrain/dp/clipping/engine.h"
#include "dptrain/models/weights.h"
#include "dptrain/train/diffusion_sampling.h"
#include "error_helpers.h"
#include "temp_dir_test.h"
#include "tiny_unet.h"

namespace dptrain::train {
namespace {

using test_support::expect_error;

models::UNetConfig tiny_unet(std::int64_t classes, std::int64_t size = 4) {
  return test_support::tiny_unet_config(size, /*in_channels=*/1, classes);
}

// n distinct 1×size×size images with labels i mod classes.
datasets::ImageDataset tiny_data(std::int64_t n, std::int64_t classes,
                                 std::uint64_t seed, std::int64_t size = 4) {
  torch::manual_seed(seed);
  const auto images = torch::randint(0, 256, {n, 1, size, size}, torch::kUInt8);
  const auto labels = torch::arange(n, torch::kLong).remainder(classes);
  return datasets::ImageDataset(images, labels, classes, {}, "tiny");
}

TrainConfig tiny_config() {
  TrainConfig c;
  c.task = "diffusion";
  c.model = "tiny";
  c.noise_multiplier = 1.0;
  c.max_grad_norm = 0.05;  // small enough that every unit is clipped
  c.batch_size = 4;
  c.max_physical_batch_size = 64;
  c.steps = 2;
  c.optimizer = "adam";
  c.lr = 1e-3;
  c.noise_multiplicity = 3;
  c.label_dropout = 0.5;  // both kinds of rows in a small batch
  c.seed = 5;
  return c;
}

std::vector<at::Tensor> trainable(models::UNet& net) {
  std::vector<at::Tensor> out;
  for (const auto& p : net->parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

// Invariant 1 for noise multiplicity: the engine's contribution of a chunk
// equals Σ_u clip_C(∇ mean of unit u's K row losses), where unit u's rows
// are built here by hand from example u's image alone, one unit at a time,
// in float64, with the same draws.
TEST(DiffusionTask, KDrawsOfOneExampleAreClippedAsOneUnit) {
  const auto data = tiny_data(5, 3, 1);
  auto config = tiny_config();
  torch::manual_seed(2);
  models::UNet net(tiny_unet(3));
  net->to(torch::kDouble);
  const std::vector<std::int64_t> chunk = {3, 0, 4};
  const std::int64_t k = config.noise_multiplicity;
  const auto units = static_cast<std::int64_t>(chunk.size());

  std::mt19937_64 rng(77);
  const std::mt19937_64 rng_before = rng;
  PrivateTask task = make_diffusion_task(net, data, config, torch::kCPU, rng);
  ASSERT_EQ(task.group_size, k);
  dp::GradientEngine engine(net.ptr(),
                            dp::ClippingOptions(config.max_grad_norm));
  {
    LoopStats stats;
    auto recording = engine.record();
    const auto losses = task.losses(chunk, stats);
    ASSERT_EQ(losses.size(0), units * k);
    EXPECT_EQ(stats.count, units);
    engine.clip_and_accumulate(losses, task.group_size);
  }
  auto params = trainable(net);
  std::vector<at::Tensor> from_engine;
  for (auto& p : params) {
    from_engine.push_back(p.grad().clone());
    p.mutable_grad() = at::Tensor();
  }

  // The same draws: the task takes one number of the rng for them.
  std::mt19937_64 replay = rng_before;
  const RowDraws draws =
      draw_rows(units * k, {1, 4, 4}, diffusion_draws(config), replay,
                torch::TensorOptions().dtype(torch::kDouble));
  EXPECT_GT(draws.drop_label.sum().item<int>(), 0);
  std::vector<at::Tensor> expected;
  for (auto& p : params) expected.push_back(torch::zeros_like(p));
  std::int64_t clipped = 0;
  for (std::int64_t u = 0; u < units; ++u) {
    const auto example = data.get(chunk[static_cast<std::size_t>(u)]);
    const auto x = (example.image.to(torch::kDouble) / 127.5 - 1.0)
                       .unsqueeze(0)
                       .expand({k, 1, 4, 4})
                       .contiguous();
    const auto labels = torch::full({k}, example.label, torch::kLong);
    const auto loss = edm_row_losses(net, x, labels, draws.rows(u * k, k),
                                     diffusion_draws(config).edm)
                          .mean();
    const auto grads = torch::autograd::grad({loss}, params);
    double norm2 = 0.0;
    for (const auto& g : grads) norm2 += g.pow(2).sum().item<double>();
    // The engine's c_u = min(1, C / (‖g_u‖ + 1e-6)) (dp/clipping/clipping.h).
    const double factor = std::min(
        1.0, config.max_grad_norm / (std::sqrt(norm2) + dp::kClipNormEpsilon));
    clipped += factor < 1.0;
    for (std::size_t i = 0; i < params.size(); ++i) {
      expected[i] += factor * grads[i];
    }
  }
  EXPECT_EQ(clipped, units) << "C is too large to exercise clipping";
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(from_engine[i], expected[i], 1e-9, 1e-12))
        << "parameter " << i << ": max diff "
        << (from_engine[i] - expected[i]).abs().max().item<double>();
  }
}

TEST(DiffusionTask, AugmentedViewsTimesKRowsFormOneGroup) {
  const auto data = tiny_data(4, 2, 3, /*size=*/8);  // crops pad by 4
  auto config = tiny_config();
  config.augmult = 2;
  models::UNet net(tiny_unet(2, /*size=*/8));
  std::mt19937_64 rng(1);
  PrivateTask task = make_diffusion_task(net, data, config, torch::kCPU, rng);
  EXPECT_EQ(task.group_size, 6);
  LoopStats stats;
  EXPECT_EQ(task.losses({0, 1}, stats).size(0), 12);
}

TEST(DiffusionTask, LabelDropoutRateIsTheConfiguredProbability) {
  DiffusionDraws d;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat);
  const std::int64_t n = 40000;
  for (const double p : {0.0, 0.1, 0.3, 1.0}) {
    d.label_dropout = p;
    std::mt19937_64 rng(9);
    const auto draws = draw_rows(n, {1, 1, 1}, d, rng, opts);
    const double rate =
        draws.drop_label.to(torch::kDouble).mean().item<double>();
    // 5 standard errors at n = 40000 (0.0075 at p = 0.3): 2/3 p and 3/2 p
    // are far outside.
    EXPECT_NEAR(rate, p, 5 * std::sqrt(p * (1 - p) / n) + 1e-12) << "p " << p;
  }
  // Dropped rows are conditioned on the null class: the loss of a row whose
  // label is dropped equals that of the same row given the null class.
  models::UNet net(tiny_unet(3));
  std::mt19937_64 rng(4);
  d.label_dropout = 1.0;
  const auto x = torch::rand({2, 1, 4, 4}) * 2 - 1;
  const auto labels = torch::tensor({0, 2}, torch::kLong);
  const auto all_dropped = draw_rows(2, {1, 4, 4}, d, rng, x.options());
  RowDraws none = all_dropped;
  none.drop_label = torch::zeros({2}, torch::kBool);
  const auto null = torch::full({2}, net->null_class(), torch::kLong);
  EXPECT_TRUE(
      torch::allclose(edm_row_losses(net, x, labels, all_dropped, d.edm),
                      edm_row_losses(net, x, null, none, d.edm)));
}

TEST(DiffusionTask, CheckpointedDrawStateGivesTheSameLosses) {
  const auto data = tiny_data(6, 2, 4);
  const auto config = tiny_config();
  models::UNet net(tiny_unet(2));
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(123);
  PrivateTask task = make_diffusion_task(net, data, config, torch::kCPU, rng);
  LoopStats stats;
  task.losses({0, 1}, stats);  // advances the state
  torch::serialize::OutputArchive out;
  task.save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  const auto uninterrupted = task.losses({2, 5}, stats);

  std::mt19937_64 other(999);
  PrivateTask resumed =
      make_diffusion_task(net, data, config, torch::kCPU, other);
  torch::serialize::InputArchive in;
  std::istringstream read(bytes.str());
  in.load_from(read);
  resumed.load(in);
  EXPECT_TRUE(torch::equal(resumed.losses({2, 5}, stats), uninterrupted));
}

class DiffusionRun : public test_support::TempDirTest {};

TEST_F(DiffusionRun, PrivateFitSummarisesPrivacyAndPostProcessing) {
  const auto data = tiny_data(8, 2, 5);
  auto config = tiny_config();
  config.metrics = path("m.jsonl");
  config.steps = 2;
  torch::manual_seed(1);
  DiffusionTrainer trainer(models::UNet(tiny_unet(2)), config);
  std::vector<std::string> lines;
  trainer.log = [&](const std::string& l) { lines.push_back(l); };
  const auto result = trainer.fit(data);
  EXPECT_EQ(result.steps, 2);
  EXPECT_GT(result.epsilon, 0.0);
  EXPECT_EQ(result.rows_per_unit, 3);
  ASSERT_FALSE(result.epochs.empty());
  bool epoch_line = false;
  for (const auto& l : lines) {
    if (l.rfind("epoch ", 0) == 0) {
      epoch_line = true;
      EXPECT_NE(l.find("(non-private)"), std::string::npos) << l;
      EXPECT_NE(l.find("epsilon"), std::string::npos) << l;
    }
  }
  EXPECT_TRUE(epoch_line);
  const auto j = nlohmann::json::parse(diffusion_summary_json(result, config));
  EXPECT_EQ(j["task"], "diffusion");
  EXPECT_DOUBLE_EQ(j["epsilon"].get<double>(), result.epsilon);
  EXPECT_EQ(j["delta"], config.delta);
  EXPECT_EQ(j["diffusion"]["noise_multiplicity"], 3);
  EXPECT_NE(
      j["post_processing"].get<std::string>().find("same (epsilon, delta)"),
      std::string::npos);
  EXPECT_TRUE(j.contains("train_loss_nonprivate"));
  std::ifstream metrics(path("m.jsonl"));
  std::string first;
  ASSERT_TRUE(std::getline(metrics, first));
  EXPECT_TRUE(nlohmann::json::parse(first).contains("train_loss_nonprivate"));
}

// The draw generator (views, σ, noise, label dropout) is restored with the
// checkpoint: two steps, a resume and two more equal four in one go.
TEST_F(DiffusionRun, ResumedRunEqualsUninterruptedRun) {
  const auto data = tiny_data(8, 2, 7, /*size=*/8);
  auto config = tiny_config();
  config.steps = 4;
  config.augmult = 1;
  const auto model = [](std::uint64_t seed) {
    torch::manual_seed(seed);
    return models::UNet(tiny_unet(2, /*size=*/8));
  };
  const auto quiet = [](DiffusionTrainer& t) {
    t.log = [](const std::string&) {};
  };
  auto full_net = model(1);
  DiffusionTrainer full(full_net, config);
  quiet(full);
  full.fit(data);

  auto part = config;
  part.steps = 2;
  part.checkpoint = path("run.ckpt");
  DiffusionTrainer first(model(1), part);
  quiet(first);
  first.fit(data);

  auto resume = config;
  resume.checkpoint = path("run.ckpt");
  resume.resume = true;
  auto resumed_net = model(99);  // everything must come from the file
  DiffusionTrainer resumed(resumed_net, resume);
  quiet(resumed);
  EXPECT_EQ(resumed.fit(data).steps, 4);
  const auto a = full_net->parameters();
  const auto b = resumed_net->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  }
}

// Pre-trained on 3 classes, fine-tuned on 2: the class embedding cannot be
// loaded; --reset-classifier starts a new one and loads everything else.
TEST_F(DiffusionRun, ResetClassifierStartsANewClassEmbedding) {
  auto cfg = models::unet_config("unet-small");
  cfg.num_classes = 3;
  torch::manual_seed(4);
  models::UNet pre(cfg);
  models::save_weights(*pre, path("pre.h5"));
  const auto data = tiny_data(4, 2, 1, 28);
  auto config = tiny_config();
  config.model = "unet-small";
  config.init_checkpoint = path("pre.h5");
  expect_error([&] { build_diffusion_model(config, data); },
               "--reset-classifier starts a new class embedding");
  config.reset_classifier = true;
  config.validate();
  const auto net = build_diffusion_model(config, data);
  const auto loaded = pre->named_parameters();
  int compared = 0;
  for (const auto& p : net->named_parameters()) {
    if (p.key().rfind("class_embedding.", 0) == 0) {
      EXPECT_EQ(p.value().size(0), 3);  // 2 classes + the null class
      continue;
    }
    EXPECT_TRUE(torch::equal(p.value(), loaded[p.key()])) << p.key();
    ++compared;
  }
  EXPECT_GT(compared, 10);
}

TEST_F(DiffusionRun, RefusesDataThatDoesNotFitTheModel) {
  auto config = tiny_config();
  DiffusionTrainer trainer(models::UNet(tiny_unet(2)), config);
  trainer.log = [](const std::string&) {};
  expect_error([&] { trainer.fit(tiny_data(8, 3, 1)); },
               "the data set has 3 classes");
  config.task = "classify";
  config.noise_multiplicity = 4;
  expect_error([&] { DiffusionTrainer t(models::UNet(tiny_unet(2)), config); },
               "needs --task diffusion");
}

TEST_F(DiffusionRun, PretrainingIsNonPrivateAndRefusesPrivacyFlags) {
  const auto data = tiny_data(6, 2, 6);
  auto config = tiny_config();
  config.noise_multiplier = 0.0;
  config.batch_size = 4;
  config.steps = 3;
  models::UNet net(tiny_unet(2));
  const auto before = net->parameters().front().clone();
  const auto result = pretrain_diffusion(net, data, config);
  EXPECT_EQ(result.steps, 3);
  EXPECT_FALSE(torch::equal(before, net->parameters().front()));
  const auto j = nlohmann::json::parse(pretrain_summary_json(result, config));
  EXPECT_EQ(j["non_private"], true);
  EXPECT_TRUE(j["epsilon"].is_null());
  EXPECT_NE(j["privacy"].get<std::string>().find("must be public"),
            std::string::npos);

  auto bad = config;
  bad.noise_multiplier = 1.0;
  expect_error([&] { pretrain_diffusion(net, data, bad); },
               "--target-epsilon and --noise-multiplier do not apply");
  bad = config;
  bad.checkpoint = path("c.ckpt");
  expect_error([&] { pretrain_diffusion(net, data, bad); },
               "--checkpoint and --resume are for private runs");
  bad = config;
  bad.steps = 0;
  expect_error([&] { pretrain_diffusion(net, data, bad); },
               "give exactly one of --epochs and --steps");
}

TEST(DiffusionConfig, FieldsAreValidatedNamingTheFlag) {
  auto c = tiny_config();
  c.validate();
  c.noise_multiplicity = 0;
  expect_error([&] { c.validate(); },
               "--noise-multiplicity must be in [1, 4096], got 0");
  c = tiny_config();
  c.label_dropout = 1.5;
  expect_error([&] { c.validate(); }, "--label-dropout must be in [0, 1]");
  c = tiny_config();
  c.edm_p_std = 0;
  expect_error([&] { c.validate(); }, "--edm-p-std must be > 0, got 0");
  c = tiny_config();
  c.sigma_data = -1;
  expect_error([&] { c.validate(); }, "--sigma-data must be > 0, got -1");
  c = tiny_config();
  c.validation_fraction = 0.1;
  expect_error([&] { c.validate(); },
               "--validation-fraction needs --task classify");
  c = TrainConfig{};  // a classifier run
  c.noise_multiplier = 1.0;
  c.steps = 1;
  c.validate();
  c.label_dropout = 0.2;
  expect_error([&] { c.validate(); },
               "--label-dropout needs --task diffusion, got --task classify");
  c.label_dropout = TrainConfig{}.label_dropout;
  c.noise_multiplicity = 8;
  expect_error([&] { c.validate(); },
               "--noise-multiplicity needs --task diffusion");
  c = tiny_config();
  c.freeze_embeddings = true;
  expect_error([&] { c.validate(); }, "need --task lm, got --task diffusion");
  c = tiny_config();
  c.diffusion_objective = "x0";
  expect_error([&] { c.validate(); }, "--diffusion-objective must be one of");
  c = tiny_config();
  c.sigma_distribution = "uniform";
  expect_error([&] { c.validate(); }, "--sigma-distribution must be one of");
  c = tiny_config();
  c.high_noise_weight = 0.5;
  expect_error([&] { c.validate(); },
               "--high-noise-weight needs --sigma-distribution high-noise-mix");
  c.sigma_distribution = "high-noise-mix";
  c.validate();
  c.high_noise_weight = 1.5;
  expect_error([&] { c.validate(); }, "--high-noise-weight must be in [0, 1]");
  c = TrainConfig{};
  c.noise_multiplier = 1.0;
  c.steps = 1;
  c.diffusion_objective = "v";
  expect_error([&] { c.validate(); },
               "--diffusion-objective needs --task diffusion");
}

// configs/diffusion/*.toml (the papers' runs) are valid diffusion configs.
TEST(DiffusionConfig, ShippedConfigFilesAreValid) {
  const char* root = std::getenv("DPTRAIN_SOURCE_DIR");
  if (root == nullptr) GTEST_SKIP() << "DPTRAIN_SOURCE_DIR is not set";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           std::filesystem::path(root) / "configs" / "diffusion")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    TrainConfig c;
    c.task = "diffusion";
    apply_toml_file(entry.path().string(), c);
    EXPECT_NO_THROW(c.validate());
    EXPECT_GT(c.target_epsilon, 0.0);
    ++files;
  }
  EXPECT_GE(files, 7);
}

TEST(DiffusionConfig, ObjectiveAndSigmaDistributionReachTheDraws) {
  auto c = tiny_config();
  c.diffusion_objective = "v";
  c.sigma_distribution = "high-noise-mix";
  c.high_noise_weight = 0.7;
  const auto d = diffusion_draws(c);
  EXPECT_EQ(d.edm.parameterization, models::Parameterization::kV);
  EXPECT_EQ(d.edm.sigma_distribution,
            models::SigmaDistribution::kLogNormalLogUniformMix);
  EXPECT_EQ(d.edm.high_noise_weight, 0.7);
  c.sigma_distribution = "cosine";
  c.high_noise_weight = TrainConfig{}.high_noise_weight;
  EXPECT_EQ(diffusion_draws(c).edm.sigma_distribution,
            models::SigmaDistribution::kCosine);
  EXPECT_EQ(diffusion_draws(tiny_config()).edm.parameterization,
            models::Parameterization::kEdm);
}

TEST(DiffusionSampling, BalancedLabelsAndSeededImagesIndependentOfBatchSize) {
  EXPECT_EQ(balanced_labels(7, {0, 2, 5}),
            (std::vector<std::int64_t>{0, 0, 0, 2, 2, 5, 5}));
  torch::manual_seed(3);
  models::UNet net(tiny_unet(2));
  const auto labels = torch::tensor({0, 1, 1}, torch::kLong);
  SampleOptions o;
  o.steps = 2;
  o.seed = 42;
  o.batch_size = 3;
  const auto whole = sample_images(net, labels, o);
  ASSERT_EQ(whole.sizes(), (std::vector<std::int64_t>{3, 1, 4, 4}));
  EXPECT_EQ(whole.scalar_type(), torch::kUInt8);
  o.batch_size = 1;
  EXPECT_TRUE(torch::equal(sample_images(net, labels, o), whole));
  o.seed = 43;
  EXPECT_FALSE(torch::equal(sample_images(net, labels, o), whole));
  o.guidance = -1;
  expect_error([&] { sample_images(net, labels, o); }, "--guidance must be");
}

TEST(DiffusionSampling, SamplersDdimAndChurn) {
  torch::manual_seed(3);
  models::UNet net(tiny_unet(2));
  const auto labels = torch::tensor({0, 1, 1, 0}, torch::kLong);
  SampleOptions o;
  o.steps = 6;  // levels inside churn's [0.05, 50]
  o.seed = 7;
  o.batch_size = 4;
  const auto heun = sample_images(net, labels, o);
  // Churn 0 is the Heun sampler exactly (Algorithm 2 without fresh noise).
  o.sampler = "churn";
  o.churn = 0.0;
  EXPECT_TRUE(torch::equal(sample_images(net, labels, o), heun));
  o.churn = 40.0;
  const auto churned = sample_images(net, labels, o);
  EXPECT_FALSE(torch::equal(churned, heun));
  EXPECT_TRUE(torch::equal(sample_images(net, labels, o), churned));  // seeded
  // DDIM: deterministic, independent of the batch size, not Heun.
  o.sampler = "ddim";
  const auto ddim = sample_images(net, labels, o);
  EXPECT_FALSE(torch::equal(ddim, heun));
  o.batch_size = 1;
  EXPECT_TRUE(torch::equal(sample_images(net, labels, o), ddim));
  o.sampler = "euler";
  expect_error([&] { sample_images(net, labels, o); },
               "--sampler must be one of heun, churn, ddim, got 'euler'");
  o.sampler = "churn";
  o.churn = -1;
  expect_error([&] { sample_images(net, labels, o); }, "--churn must be");
}

class SampleCommand : public test_support::TempDirTest {
 protected:
  static datasets::Hdf5Options split(const std::string& name) {
    datasets::Hdf5Options o;
    o.split = name;
    return o;
  }
  SampleRun valid() {
    torch::manual_seed(0);
    auto cfg = models::unet_config("unet-small");
    cfg.num_classes = 2;
    models::UNet net(cfg);
    models::save_weights(*net, path("w.h5"));
    std::ofstream(path("summary.json"))
        << R"({"task": "diffusion", "epsilon": 3.5, "delta": 1e-05,
               "num_classes": 2, "seeded": true})";
    SampleRun run;
    run.weights = path("w.h5");
    run.model = "unet-small";
    run.num_samples = 3;
    run.test_samples = 2;
    run.out = path("s.h5");
    run.grid = path("g.png");
    run.privacy_summary = path("summary.json");
    run.seed = 1;
    run.sampler.steps = 1;
    return run;
  }
};

TEST_F(SampleCommand, WritesADataSetTheReaderTakesWithItsPrivacy) {
  const auto info = nlohmann::json::parse(run_diffusion_sampling(valid()));
  EXPECT_EQ(info["epsilon"], 3.5);
  EXPECT_EQ(info["delta"], 1e-5);
  const auto train = datasets::load_hdf5(path("s.h5"), split("train"));
  EXPECT_EQ(train.size(), 3);
  EXPECT_EQ(train.shape(), (std::array<std::int64_t, 3>{1, 28, 28}));
  EXPECT_EQ(train.labels()[0].item<std::int64_t>(), 0);
  EXPECT_EQ(train.labels()[2].item<std::int64_t>(), 1);
  EXPECT_EQ(datasets::load_hdf5(path("s.h5"), split("test")).size(), 2);
  EXPECT_TRUE(std::filesystem::exists(path("g.png")));
  std::ifstream sidecar(path("s.h5.json"));
  const auto side = nlohmann::json::parse(sidecar);
  EXPECT_EQ(side["epsilon"], 3.5);
  EXPECT_NE(side["privacy"].get<std::string>().find("post-processing"),
            std::string::npos);
}

// The summary's weights_crc32 ties the samples' (ε, δ) to the weights.
TEST_F(SampleCommand, WeightsMustBeTheSummarisedRunsWhenItListsThem) {
  auto run = valid();
  const auto summary = [&](std::uint32_t crc) {
    std::ofstream(path("summary.json")) << nlohmann::json{
        {"task", "diffusion"},
        {"epsilon", 3.5},
        {"delta", 1e-5},
        {"num_classes", 2},
        {"weights_crc32", {{"w.h5", crc}}}}.dump();
  };
  summary(file_crc32(run.weights) + 1);
  expect_error([&] { run_diffusion_sampling(run); }, "CRC-32 mismatch");
  summary(file_crc32(run.weights));
  const auto info = nlohmann::json::parse(run_diffusion_sampling(run));
  EXPECT_EQ(info["weights_verified"], true);
}

// A v-prediction network read with EDM's preconditioning gives other images:
// the objective comes from the run's summary, and a contradicting flag is
// refused.
TEST_F(SampleCommand, ObjectiveIsTheTrainedOnesFromTheSummary) {
  auto run = valid();
  const auto with_objective = [&](const std::string& objective) {
    std::ofstream(path("summary.json")) << nlohmann::json{
        {"task", "diffusion"},
        {"epsilon", 3.5},
        {"delta", 1e-5},
        {"num_classes", 2},
        {"diffusion",
         {{"diffusion_objective", objective}}}}.dump();
  };
  with_objective("v");
  const auto v = nlohmann::json::parse(run_diffusion_sampling(run));
  EXPECT_EQ(v["objective"], "v");
  const auto v_images = datasets::load_hdf5(path("s.h5"), split("train"));
  with_objective("edm");
  EXPECT_EQ(nlohmann::json::parse(run_diffusion_sampling(run))["objective"],
            "edm");
  const auto edm_images = datasets::load_hdf5(path("s.h5"), split("train"));
  EXPECT_FALSE(torch::equal(v_images.images(), edm_images.images()));
  run.objective = "v";
  expect_error([&] { run_diffusion_sampling(run); },
               "--objective v: the run of --privacy-summary");
  run = valid();
  run.objective = "x0";
  expect_error([&] { run_diffusion_sampling(run); },
               "--objective must be edm or v, got 'x0'");
}

TEST_F(SampleCommand, BadInputsNameTheFlag) {
  auto run = valid();
  run.out = path("s.txt");
  expect_error([&] { run_diffusion_sampling(run); }, "--out");
  run = valid();
  run.weights = path("missing.h5");
  expect_error([&] { run_diffusion_sampling(run); }, "--weights");
  run = valid();
  run.model = "cnn";
  expect_error([&] { run_diffusion_sampling(run); },
               "--model 'cnn' is not a diffusion model");
  run = valid();
  run.num_samples = 0;
  expect_error([&] { run_diffusion_sampling(run); },
               "--num-samples must be >= 1");
  run = valid();
  run.classes = {0, 2};
  expect_error([&] { run_diffusion_sampling(run); },
               "--classes must list labels in [0, 2)");
  run = valid();
  run.num_classes = 3;  // the weights have 2 (+ null)
  expect_error([&] { run_diffusion_sampling(run); }, "--weights");
  run = valid();
  std::ofstream(path("other.json")) << R"({"task": "classify"})";
  run.privacy_summary = path("other.json");
  expect_error([&] { run_diffusion_sampling(run); },
               "not the summary of `dptrain diffusion finetune`");
  run = valid();
  run.grid = path("s.h5");
  expect_error([&] { run_diffusion_sampling(run); }, "--grid");
  EXPECT_FALSE(std::filesystem::exists(path("s.h5")));
}

}  // namespace
}  // namespace dptrain::train
