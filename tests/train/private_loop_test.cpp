// PrivateLoop's wiring, checked against independent computations: one noise
// draw per logical step after all chunks, of the right size and scale; the
// division by the configured expected batch size; the write-ahead ledger, the
// checkpoint lock, the overwrite rule; no key material in secure checkpoints.
#include "dptrain/train/private_loop.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "dptrain/accountant/rdp_accountant.h"
#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/mechanism/noise_generator.h"
#include "dptrain/dp/mechanism/poisson_sampler.h"
#include "dptrain/train/checkpoint.h"
#include "dptrain/train/distributed.h"
#include "dptrain/train/ledger.h"
#include "error_helpers.h"
#include "temp_dir_test.h"

namespace dptrain::train {
namespace {

using dptrain::test_support::error_of;

struct TinyImpl : torch::nn::Module {
  TinyImpl() : fc(register_module("fc", dp::Linear(3, 2))) {}
  dp::Linear fc;
};

constexpr std::int64_t kN = 40;

struct Data {
  torch::Tensor x, y;  // [N, 3], [N, 2], double
};

Data make_data() {
  torch::manual_seed(3);
  return {torch::randn({kN, 3}, torch::kDouble),
          torch::randn({kN, 2}, torch::kDouble)};
}

std::shared_ptr<TinyImpl> make_model(std::uint64_t seed) {
  torch::manual_seed(seed);
  auto m = std::make_shared<TinyImpl>();
  m->to(torch::kDouble);
  return m;
}

// K views of example i: x_i scaled by 1, 1/2, 1/3, ...
torch::Tensor rows_of(const Data& d, const std::vector<std::int64_t>& idx,
                      std::int64_t k, torch::Tensor& targets) {
  std::vector<torch::Tensor> xs, ys;
  for (const auto i : idx) {
    for (std::int64_t v = 0; v < k; ++v) {
      xs.push_back(d.x[i] / static_cast<double>(v + 1));
      ys.push_back(d.y[i]);
    }
  }
  targets = torch::stack(ys);
  return torch::stack(xs);
}

torch::Tensor row_losses(TinyImpl& m, const torch::Tensor& x,
                         const torch::Tensor& y) {
  return 0.5 * (m.fc(x) - y).pow(2).sum(1);
}

PrivateTask make_task(const Data& d, TinyImpl& m, std::int64_t k) {
  PrivateTask task;
  task.dataset_size = kN;
  task.group_size = k;
  task.losses = [&d, &m, k](const std::vector<std::int64_t>& chunk,
                            LoopStats& stats) {
    torch::Tensor y;
    const auto x = rows_of(d, chunk, k, y);
    stats.count += static_cast<std::int64_t>(chunk.size());
    return row_losses(m, x, y);
  };
  return task;
}

// What the loop asked of its noise source, with the state at that moment.
struct Draw {
  std::int64_t numel = 0;
  at::ScalarType dtype = at::kFloat;
  std::vector<torch::Tensor> params, grads;
  torch::Tensor z;  // what was handed back, double
};

class RecordingNoise final : public dp::NoiseGenerator {
 public:
  RecordingNoise(std::vector<Draw>& draws, std::vector<torch::Tensor> params,
                 std::uint64_t seed)
      : draws_(draws),
        params_(std::move(params)),
        generator_(at::detail::createCPUGenerator(seed)) {}
  using NoiseGenerator::standard_normal;
  at::Tensor standard_normal(int64_t numel, at::ScalarType dtype) override {
    Draw d;
    d.numel = numel;
    d.dtype = dtype;
    for (const auto& p : params_) {
      d.params.push_back(p.detach().clone());
      d.grads.push_back(p.grad().defined() ? p.grad().clone()
                                           : torch::zeros_like(p));
    }
    d.z = at::empty({numel}, at::kDouble).normal_(0.0, 1.0, generator_);
    draws_.push_back(d);
    return d.z.to(dtype);
  }
  bool reproducible() const override { return true; }
  std::string name() const override { return "recording"; }
  void save(torch::serialize::OutputArchive&) const override {}
  void load(torch::serialize::InputArchive&) override {}

 private:
  std::vector<Draw>& draws_;
  std::vector<torch::Tensor> params_;
  at::Generator generator_;
};

TrainConfig wiring_config() {
  TrainConfig c;
  c.dataset = "toy";
  c.noise_multiplier = 0.7;
  c.max_grad_norm = 0.5;
  c.batch_size = 10;              // q = 1/4; realised sizes vary around 10
  c.max_physical_batch_size = 4;  // rows: 2 examples of K = 2 per chunk
  c.steps = 5;
  c.lr = 0.3;
  c.seed = 17;
  return c;
}

// The clipped sum of step t's batch at `params`, by the microbatch oracle.
std::vector<torch::Tensor> oracle_sum(const Data& d,
                                      const std::vector<torch::Tensor>& params,
                                      const std::vector<std::int64_t>& batch,
                                      std::int64_t k, double clip) {
  auto m = make_model(0);
  {
    torch::NoGradGuard ng;
    auto mp = m->parameters();
    for (std::size_t i = 0; i < mp.size(); ++i) mp[i].copy_(params[i]);
  }
  dp::microbatch_clip_and_accumulate(
      *m, static_cast<int64_t>(batch.size()),
      [&](int64_t i) {
        torch::Tensor y;
        const auto x = rows_of(d, {batch[static_cast<std::size_t>(i)]}, k, y);
        return row_losses(*m, x, y);
      },
      dp::ClippingOptions(clip));
  std::vector<torch::Tensor> out;
  for (const auto& p : m->parameters()) {
    out.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  }
  return out;
}

// Checks draws[i] (step first_step + i) against the oracle and the SGD update
// into the next draw's parameters (or `final_params`).
void check_draws(const Data& d, const std::vector<Draw>& draws,
                 std::int64_t first_step, const TrainConfig& c, std::int64_t k,
                 const std::vector<torch::Tensor>& final_params) {
  const dp::PoissonSampler sampler(kN, static_cast<double>(c.batch_size) / kN,
                                   dp::key_from_seed(*c.seed),
                                   dp::SamplerKey::kReproducible);
  bool some_batch_differs_from_b = false;
  for (std::size_t t = 0; t < draws.size(); ++t) {
    const Draw& draw = draws[t];
    SCOPED_TRACE("step " +
                 std::to_string(first_step + static_cast<std::int64_t>(t)));
    EXPECT_EQ(draw.numel, 3 * 2 + 2);
    const auto batch =
        sampler.batch_at(first_step + static_cast<std::int64_t>(t));
    some_batch_differs_from_b |=
        static_cast<std::int64_t>(batch.size()) != c.batch_size;
    // All chunks were summed before the draw. Normalized clipping divides
    // each clipped gradient by C, so the sum's sensitivity is 1, not C.
    auto expected = oracle_sum(d, draw.params, batch, k, c.max_grad_norm);
    const double sensitivity = c.normalize_clipped ? 1.0 : c.max_grad_norm;
    if (c.normalize_clipped) {
      for (auto& e : expected) e = e / c.max_grad_norm;
    }
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_TRUE(torch::allclose(draw.grads[i], expected[i], 1e-10, 1e-12))
          << "clipped sum of parameter " << i;
    }
    // θ' = θ − lr·(Σ clip(g) + σ·sensitivity·z) / B with the configured B.
    const auto& next =
        t + 1 < draws.size() ? draws[t + 1].params : final_params;
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < expected.size(); ++i) {
      const auto n = draw.params[i].numel();
      const auto z = draw.z.narrow(0, offset, n).view(draw.params[i].sizes());
      offset += n;
      const auto noisy =
          (draw.grads[i] + c.noise_multiplier * sensitivity * z) /
          static_cast<double>(c.batch_size);
      EXPECT_TRUE(
          torch::allclose(next[i], draw.params[i] - c.lr * noisy, 1e-10, 1e-12))
          << "update of parameter " << i;
    }
  }
  EXPECT_TRUE(some_batch_differs_from_b)
      << "the test needs a realised size other than B";
}

std::vector<torch::Tensor> parameters_of(TinyImpl& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

class Loop : public dptrain::test_support::TempDirTest {};

TEST_F(Loop, OneNoiseDrawPerStepAfterAllChunksDividedByTheConfiguredBatchSize) {
  const Data d = make_data();
  for (const std::int64_t k : {1, 2}) {
    SCOPED_TRACE("K = " + std::to_string(k));
    auto model = make_model(5);
    TrainConfig c = wiring_config();
    c.max_physical_batch_size =
        2 * k;  // 2 examples per chunk: ~5 chunks a step
    PrivateLoop loop(model, c);
    loop.log = [](const std::string&) {};
    std::vector<Draw> draws;
    loop.set_noise_generator(std::make_unique<RecordingNoise>(
        draws, loop.engine().parameters(), 99));
    const auto result = loop.run(make_task(d, *model, k));
    ASSERT_EQ(draws.size(), 5U);
    for (const auto& draw : draws) EXPECT_EQ(draw.dtype, at::kDouble);
    EXPECT_EQ(result.steps, 5);
    check_draws(d, draws, 0, c, k, parameters_of(*model));
  }
}

TEST_F(Loop, NormalizedClippingIsNoisedAtSigmaTimesOne) {
  const Data d = make_data();
  auto model = make_model(5);
  TrainConfig c = wiring_config();
  c.max_grad_norm = 3.0;  // far from 1: σ·C would be visibly wrong
  c.normalize_clipped = true;
  PrivateLoop loop(model, c);
  loop.log = [](const std::string&) {};
  std::vector<Draw> draws;
  loop.set_noise_generator(
      std::make_unique<RecordingNoise>(draws, loop.engine().parameters(), 99));
  const auto result = loop.run(make_task(d, *model, 1));
  ASSERT_EQ(draws.size(), 5U);
  EXPECT_EQ(result.plan.sensitivity, 1.0);
  check_draws(d, draws, 0, c, 1, parameters_of(*model));
}

TEST_F(Loop, WiringHoldsAcrossAResume) {
  const Data d = make_data();
  const std::int64_t k = 2;
  TrainConfig c = wiring_config();
  c.checkpoint = path("c.ckpt");
  c.steps = 3;
  std::vector<Draw> first, second;
  std::vector<torch::Tensor> after_first;
  {
    auto model = make_model(5);
    PrivateLoop loop(model, c);
    loop.log = [](const std::string&) {};
    loop.set_noise_generator(
        std::make_unique<RecordingNoise>(first, loop.engine().parameters(), 1));
    loop.run(make_task(d, *model, k));
    after_first = parameters_of(*model);
  }
  c.steps = 6;
  c.resume = true;
  auto model =
      make_model(6);  // other initial weights: the checkpoint's are loaded
  PrivateLoop loop(model, c);
  loop.log = [](const std::string&) {};
  loop.set_noise_generator(
      std::make_unique<RecordingNoise>(second, loop.engine().parameters(), 2));
  const auto result = loop.run(make_task(d, *model, k));
  ASSERT_EQ(first.size(), 3U);
  ASSERT_EQ(second.size(), 3U);
  check_draws(d, first, 0, c, k, after_first);
  check_draws(d, second, 3, c, k, parameters_of(*model));
  for (std::size_t i = 0; i < after_first.size(); ++i) {
    EXPECT_TRUE(torch::equal(second[0].params[i], after_first[i]));
  }
  EXPECT_EQ(result.steps, 6);
  EXPECT_EQ(result.steps_accounted, 6);
}

TrainConfig small_config(const std::string& checkpoint) {
  TrainConfig c = wiring_config();
  c.checkpoint = checkpoint;
  c.steps = 2;
  return c;
}

LoopResult run_small(const TrainConfig& c,
                     std::vector<std::string>* log = nullptr) {
  static const Data d = make_data();
  auto model = make_model(5);
  PrivateLoop loop(model, c);
  loop.log = [log](const std::string& line) {
    if (log != nullptr) log->push_back(line);
  };
  return loop.run(make_task(d, *model, 1));
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST_F(Loop, FreshRunRefusesAnExistingCheckpointUnlessOverwrite) {
  const auto ckpt = path("c.ckpt");
  run_small(small_config(ckpt));
  const auto before = bytes_of(ckpt);
  const auto ledger_before = bytes_of(ledger_path(ckpt));
  const auto message =
      error_of<std::invalid_argument>([&] { run_small(small_config(ckpt)); });
  EXPECT_NE(message.find("checkpoint '" + ckpt + "' and its privacy ledger"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("(2 accounted steps)"), std::string::npos) << message;
  EXPECT_NE(message.find("--resume"), std::string::npos);
  EXPECT_NE(message.find("--overwrite"), std::string::npos);
  EXPECT_EQ(bytes_of(ckpt), before);
  EXPECT_EQ(bytes_of(ledger_path(ckpt)), ledger_before);
  // A ledger alone (a run killed before its first checkpoint) is a record too.
  std::filesystem::remove(ckpt);
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              run_small(small_config(ckpt));
            }).find("privacy ledger '" + ledger_path(ckpt) + "'"),
            std::string::npos);
  TrainConfig over = small_config(ckpt);
  over.overwrite = true;
  std::vector<std::string> log;
  const auto result = run_small(over, &log);
  EXPECT_EQ(result.steps_accounted, 2);
  bool said = false;
  for (const auto& line : log)
    said |= line.rfind("--overwrite: discarding", 0) == 0;
  EXPECT_TRUE(said);
}

TEST_F(Loop, ResumingAnOlderCopyNeverLowersTheRecord) {
  const auto ckpt = path("c.ckpt");
  TrainConfig c = small_config(ckpt);
  run_small(c);  // steps 0, 1
  std::filesystem::copy_file(ckpt, path("old.ckpt"));
  c.resume = true;
  c.steps = 4;
  run_small(c);  // steps 2, 3: four on the ledger
  std::filesystem::copy_file(path("old.ckpt"), ckpt,
                             std::filesystem::copy_options::overwrite_existing);
  c.steps = 5;
  std::vector<std::string> log;
  const auto result = run_small(c, &log);  // from step 2 again: 3 more steps
  EXPECT_EQ(result.steps, 5);
  EXPECT_EQ(result.steps_accounted, 7);
  EXPECT_EQ(accountant::total_steps(read_ledger_history(ledger_path(ckpt))), 7);
  // ε is that of 7 steps.
  accountant::RdpAccountant rdp;
  rdp.set_history({{0.25, c.noise_multiplier, 7}});
  EXPECT_DOUBLE_EQ(result.epsilon_rdp, rdp.get_epsilon(c.delta).epsilon);
  EXPECT_NE(
      log[0].find("at step 2 (4 steps accounted by the ledger, 2 of them lost"),
      std::string::npos)
      << log[0];
}

TEST_F(Loop, ResumeWithoutItsLedgerIsRefused) {
  const auto ckpt = path("c.ckpt");
  TrainConfig c = small_config(ckpt);
  run_small(c);
  std::filesystem::copy_file(ckpt, path("copy.ckpt"));
  c.checkpoint = path("copy.ckpt");
  c.resume = true;
  c.steps = 3;
  EXPECT_NE(error_of<std::runtime_error>([&] {
              run_small(c);
            }).find("has no privacy ledger '" + path("copy.ckpt") + ".ledger'"),
            std::string::npos);
  // Another run's ledger does not count for this checkpoint.
  run_small(small_config(path("other.ckpt")));
  std::filesystem::copy_file(ledger_path(path("other.ckpt")),
                             ledger_path(path("copy.ckpt")));
  EXPECT_NE(error_of<std::runtime_error>([&] {
              run_small(c);
            }).find("belong to different runs"),
            std::string::npos);
}

TEST_F(Loop, ASecondRunOnAHeldCheckpointFailsNamingTheHolder) {
  const auto ckpt = path("c.ckpt");
  CheckpointLock held(ckpt);
  const auto message =
      error_of<std::runtime_error>([&] { run_small(small_config(ckpt)); });
  EXPECT_NE(message.find("--checkpoint '" + ckpt +
                         "' is in use by another run (pid " +
                         std::to_string(::getpid()) + " holds"),
            std::string::npos)
      << message;
  EXPECT_FALSE(std::filesystem::exists(ledger_path(ckpt)));
}

TEST_F(Loop, SecureCheckpointHoldsNoKeyAndSaysItIsPrivate) {
  TrainConfig c = small_config(path("c.ckpt"));
  c.seed.reset();
  const auto result = run_small(c);
  EXPECT_FALSE(result.seeded);
  torch::serialize::InputArchive in;
  load_checkpoint(c.checkpoint, in);
  torch::serialize::InputArchive sampler, noise;
  in.read("sampler", sampler);
  in.read("noise", noise);
  for (const auto& key : sampler.keys()) EXPECT_NE(key, "key");
  EXPECT_EQ(noise.keys(), std::vector<std::string>{"kind"});
  c10::IValue release;
  in.read("release", release);
  EXPECT_NE(release.toStringRef().find("do not publish"), std::string::npos);
  EXPECT_EQ(release.toStringRef().find(kSeededNotice), std::string::npos);
}

TEST_F(Loop, SeededRunSaysNotForReleaseEverywhere) {
  TrainConfig c = small_config(path("c.ckpt"));
  std::vector<std::string> log;
  const auto result = run_small(c, &log);
  EXPECT_TRUE(result.seeded);
  bool logged = false;
  for (const auto& line : log)
    logged |= line.find(kSeededNotice) != std::string::npos;
  EXPECT_TRUE(logged);
  torch::serialize::InputArchive in;
  load_checkpoint(c.checkpoint, in);
  c10::IValue release;
  in.read("release", release);
  EXPECT_NE(release.toStringRef().find(kSeededNotice), std::string::npos);
  const auto summary = nlohmann::json::parse(privacy_summary_json(result, c));
  EXPECT_TRUE(summary.at("seeded").get<bool>());
  EXPECT_NE(summary.at("publish").get<std::string>().find(kSeededNotice),
            std::string::npos);
  EXPECT_EQ(summary.at("steps_accounted").get<std::int64_t>(), 2);
}

TEST_F(Loop, OnePlanIsLoggedCheckpointedAndSummarised) {
  TrainConfig c = small_config(path("c.ckpt"));
  std::vector<std::string> log;
  const auto result = run_small(c, &log);
  const DpPlan& plan = result.plan;
  // The plan is the configuration's privacy, as the test states it.
  EXPECT_EQ(plan.dataset_size, kN);
  EXPECT_EQ(plan.expected_batch_size, c.batch_size);
  EXPECT_DOUBLE_EQ(plan.sample_rate, 10.0 / 40.0);
  EXPECT_EQ(plan.steps, 2);
  EXPECT_EQ(plan.steps_per_epoch, 4);
  EXPECT_EQ(plan.noise_multiplier, 0.7);
  EXPECT_EQ(plan.noise_multiplier_source, "given");
  EXPECT_EQ(plan.sensitivity, 0.5);
  EXPECT_DOUBLE_EQ(plan.noise_stddev(), 0.35);
  EXPECT_TRUE(plan.seeded);
  EXPECT_EQ(result.noise_multiplier, plan.noise_multiplier);
  EXPECT_EQ(result.sample_rate, plan.sample_rate);
  // Logged once, written into the checkpoint and the summary unchanged.
  int plan_lines = 0;
  for (const auto& line : log) {
    if (line.rfind("plan: ", 0) == 0) {
      ++plan_lines;
      EXPECT_NE(line.find("noise_multiplier = 0.7000 (given)"),
                std::string::npos)
          << line;
      EXPECT_NE(line.find("sensitivity = 0.5"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(plan_lines, 1);
  torch::serialize::InputArchive in;
  load_checkpoint(c.checkpoint, in);
  c10::IValue saved;
  ASSERT_TRUE(in.try_read("plan", saved));
  const auto checkpointed = nlohmann::json::parse(saved.toStringRef());
  const auto summary = nlohmann::json::parse(privacy_summary_json(result, c));
  EXPECT_EQ(checkpointed, summary.at("plan"));
  EXPECT_EQ(checkpointed.at("noise_multiplier").get<double>(), 0.7);
  EXPECT_EQ(checkpointed.at("sensitivity").get<double>(), 0.5);
  EXPECT_EQ(summary.at("noise_multiplier").get<double>(), 0.7);
}

TEST_F(Loop, DiagnosticsLogNonPrivateClippingStatisticsPerEpoch) {
  TrainConfig c = small_config("");
  c.diagnostics = true;
  c.steps = 0;
  c.epochs = 2;  // 4 steps an epoch at q = 1/4
  std::vector<std::string> log;
  run_small(c, &log);
  int lines = 0;
  for (const auto& line : log) {
    if (line.rfind("diagnostics (NON-PRIVATE", 0) != 0) continue;
    ++lines;
    EXPECT_NE(
        line.find("% of examples clipped; per-example gradient norm quantiles"),
        std::string::npos)
        << line;
  }
  EXPECT_EQ(lines, 2);
}

TEST(Ledger, DropsALineCutShortAndRefusesAMalformedOne) {
  const auto dir =
      std::filesystem::temp_directory_path() / "dptrain_ledger_test";
  std::filesystem::create_directories(dir);
  const auto file = (dir / "l.ledger").string();
  {
    auto ledger = PrivacyLedger::create(file, "abc", "{}");
    ledger.append(0.25, 1.5);
  }
  {
    std::ofstream out(file, std::ios::app);
    out << "step 0.25 1.";  // a write cut short by a crash
  }
  {
    auto ledger = PrivacyLedger::open(file);
    EXPECT_EQ(ledger.run_id(), "abc");
    EXPECT_EQ(ledger.steps(), 1);
    ledger.append(0.25, 1.5);
  }
  EXPECT_EQ(accountant::total_steps(read_ledger_history(file)), 2);
  {
    std::ofstream out(file, std::ios::app);
    out << "step 0.25 oops\n";
  }
  EXPECT_EQ(error_of<std::runtime_error>([&] { PrivacyLedger::open(file); }),
            "privacy ledger '" + file +
                "' line 6: expected 'step <q> <sigma>', got 'step 0.25 oops'");
  std::filesystem::remove_all(dir);
}

// Data-parallel runs (distributed.h), ranks as threads of this process over
// Gloo on localhost: the union of the ranks' shares is the batch, no example
// is seen twice, and a W-rank seeded run is the one-process run: the same
// batches, one noise draw per step (rank 0's), the same weights up to the
// order of the sums.
TEST(DataParallel, RankSharesAreDisjointAndMakeTheBatch) {
  const std::vector<std::int64_t> batch{7, 3, 9, 0, 12, 5, 8};
  for (int world = 1; world <= 4; ++world) {
    std::vector<std::int64_t> all;
    for (int r = 0; r < world; ++r) {
      const auto share = rank_share(batch, r, world);
      all.insert(all.end(), share.begin(), share.end());
    }
    std::sort(all.begin(), all.end());
    std::vector<std::int64_t> sorted = batch;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(all, sorted) << "world " << world;
  }
  EXPECT_TRUE(rank_share({}, 1, 2).empty());
  EXPECT_THROW(rank_share(batch, 2, 2), std::invalid_argument);
}

TEST(DataParallel, EnvironmentErrorsNameTheVariable) {
  setenv("WORLD_SIZE", "2", 1);
  unsetenv("RANK");
  EXPECT_NE(error_of([] {
              distributed_env_from_environment();
            }).find("RANK is not set"),
            std::string::npos);
  setenv("RANK", "2", 1);
  EXPECT_NE(error_of([] {
              distributed_env_from_environment();
            }).find("RANK='2': expected an integer in [0, 1]"),
            std::string::npos);
  setenv("RANK", "1", 1);
  setenv("MASTER_PORT", "http", 1);
  EXPECT_NE(error_of([] {
              distributed_env_from_environment();
            }).find("MASTER_PORT='http'"),
            std::string::npos);
  unsetenv("MASTER_PORT");
  const auto env = distributed_env_from_environment();
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.world_size, 2);
  unsetenv("WORLD_SIZE");
  unsetenv("RANK");
  EXPECT_FALSE(distributed_env_from_environment().distributed());
}

// A port for this test's store: distinct per process and world size, so that
// ctest's parallel shards do not meet; 27000-32615, clear of the CLI launch
// test's (20000-26005) and below Linux's ephemeral ports (32768-).
int test_port(int world) {
  return 27000 + static_cast<int>(getpid() % 1400) * 4 + world;
}

TEST(DataParallel, SeededRunsOfTwoAndThreeRanksEqualTheOneProcessRun) {
  const Data d = make_data();
  for (const std::int64_t k : {1, 2}) {
    TrainConfig c = wiring_config();
    c.max_physical_batch_size = 2 * k;
    auto single = make_model(5);
    std::vector<Draw> single_draws;
    // Every example index each process computed a loss for, in order.
    const auto recording = [&](TinyImpl& m, std::vector<std::int64_t>& seen) {
      PrivateTask task = make_task(d, m, k);
      task.losses = [inner = task.losses, &seen](
                        const std::vector<std::int64_t>& chunk,
                        LoopStats& stats) {
        seen.insert(seen.end(), chunk.begin(), chunk.end());
        return inner(chunk, stats);
      };
      return task;
    };
    std::vector<std::int64_t> single_seen;
    {
      PrivateLoop loop(single, c);
      loop.log = [](const std::string&) {};
      loop.set_noise_generator(std::make_unique<RecordingNoise>(
          single_draws, loop.engine().parameters(), 99));
      loop.run(recording(*single, single_seen));
    }
    ASSERT_EQ(single_draws.size(), 5U);
    for (const int world : {2, 3}) {
      SCOPED_TRACE("K = " + std::to_string(k) + ", " + std::to_string(world) +
                   " ranks");
      std::vector<std::shared_ptr<TinyImpl>> models;
      for (int r = 0; r < world; ++r) models.push_back(make_model(5));
      std::vector<std::vector<Draw>> draws(static_cast<std::size_t>(world));
      std::vector<std::string> errors(static_cast<std::size_t>(world));
      std::vector<LoopResult> results(static_cast<std::size_t>(world));
      std::vector<std::vector<std::int64_t>> seen(
          static_cast<std::size_t>(world));
      std::vector<std::thread> ranks;
      for (int r = 0; r < world; ++r) {
        ranks.emplace_back([&, r] {
          const auto i = static_cast<std::size_t>(r);
          try {
            DistributedEnv env;
            env.rank = r;
            env.world_size = world;
            env.master_port = test_port(world) + static_cast<int>(k) * 8;
            std::shared_ptr<Communicator> communicator =
                connect_gloo(env, std::chrono::seconds(60));
            PrivateLoop loop(models[i], c);
            loop.log = [](const std::string&) {};
            loop.set_communicator(communicator);
            loop.set_noise_generator(std::make_unique<RecordingNoise>(
                draws[i], loop.engine().parameters(), 99));
            results[i] = loop.run(recording(*models[i], seen[i]));
          } catch (const std::exception& e) {
            errors[i] = e.what();
          }
        });
      }
      for (auto& t : ranks) t.join();
      // The ranks' examples are the one-process run's, each once.
      std::vector<std::int64_t> all, want_seen = single_seen;
      for (const auto& v : seen) all.insert(all.end(), v.begin(), v.end());
      std::sort(all.begin(), all.end());
      std::sort(want_seen.begin(), want_seen.end());
      EXPECT_EQ(all, want_seen);
      for (int r = 0; r < world; ++r) {
        const auto i = static_cast<std::size_t>(r);
        ASSERT_EQ(errors[i], "") << "rank " << r;
        EXPECT_EQ(results[i].steps, 5);
        EXPECT_DOUBLE_EQ(results[i].epsilon, results[0].epsilon);
        // Noise exactly once per step: on rank 0, the one-process draws.
        EXPECT_EQ(draws[i].size(), r == 0 ? 5U : 0U) << "rank " << r;
        const auto got = parameters_of(*models[i]);
        const auto want = parameters_of(*single);
        ASSERT_EQ(got.size(), want.size());
        for (std::size_t p = 0; p < got.size(); ++p) {
          EXPECT_TRUE(torch::allclose(got[p], want[p], 1e-12, 1e-12))
              << "rank " << r << " parameter " << p << ": "
              << (got[p] - want[p]).abs().max().item<double>();
        }
      }
    }
  }
}

}  // namespace
}  // namespace dptrain::train
