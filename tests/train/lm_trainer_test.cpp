// Private language-model training (Griffin / Hawk on byte-level text) through
// the shared private loop: learning a repetitive text, ε from an independent
// accountant, resume, frozen parts, checkpoints that `generate` rebuilds,
// initial weights from safetensors, and the flag-naming errors.
#include "dptrain/train/lm_trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dptrain/accountant/rdp_accountant.h"
#include "dptrain/datasets/tokenizer.h"
#include "dptrain/models/safetensors.h"
#include "error_helpers.h"
#include "sentencepiece_model.h"
#include "temp_dir_test.h"

namespace dptrain::train {
namespace {

namespace fs = std::filesystem;
using test_support::error_of;

std::string repetitive_text(int copies) {
  std::string s;
  for (int i = 0; i < copies; ++i) s += "the cat sat on the mat. ";
  return s;
}

models::Griffin tiny_model(const std::string& name, std::uint64_t seed) {
  torch::manual_seed(seed);
  return models::Griffin(models::griffin_config(name));
}

TrainConfig lm_config() {
  TrainConfig c;
  c.task = "lm";
  c.model = "hawk-tiny";
  c.sequence_length = 24;
  c.noise_multiplier = 0.5;
  c.max_grad_norm = 1.0;
  c.batch_size = 16;
  c.max_physical_batch_size = 10;  // several physical chunks
  c.steps = 4;
  c.optimizer = "adam";
  c.lr = 0.02;
  c.seed = 7;
  return c;
}

class LmTraining : public dptrain::test_support::TempDirTest {
 protected:
  std::string write_text(const std::string& name,
                         const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }
  static void quiet(LmTrainer& t) {
    t.log = [](const std::string&) {};
  }
};

TEST_F(LmTraining, LearnsRepetitiveTextAndReportsPerplexityAndEpsilon) {
  const datasets::TextDataset train(repetitive_text(40), 24);  // 40 sequences
  const datasets::TextDataset heldout(repetitive_text(4), 24);
  auto config = lm_config();
  config.steps = 10;
  config.batch_size = 8;
  config.lr = 0.05;
  config.ema_decay = 0.8;
  LmTrainer trainer(tiny_model("hawk-tiny", 1), config);
  std::string log;
  trainer.log = [&](const std::string& line) { log += line + "\n"; };
  const auto r = trainer.fit(train, &heldout);
  EXPECT_EQ(r.steps, 10);
  // A uniform byte model has perplexity 256; the tiny model starts near it.
  EXPECT_GT(r.initial_eval.perplexity, 150.0);
  EXPECT_LT(r.eval.perplexity, 0.5 * r.initial_eval.perplexity);
  EXPECT_GT(r.ema_eval.sequences, 0);
  EXPECT_NEAR(r.eval.perplexity, std::exp(r.eval.loss),
              1e-9 * r.eval.perplexity);
  EXPECT_EQ(r.eval.tokens, 4 * 23);
  accountant::RdpAccountant rdp;
  rdp.compose({8.0 / 40.0, 0.5, 10});
  EXPECT_DOUBLE_EQ(r.epsilon, rdp.get_epsilon(1e-5).epsilon);
  // One epoch = ceil(1/q) = 5 steps: 2 epoch records, ε growing.
  ASSERT_EQ(r.epochs.size(), 2U);
  EXPECT_LT(r.epochs.front().epsilon, r.epochs.back().epsilon);
  EXPECT_NE(log.find("privacy unit: one sequence of 24 bytes"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("adjacency = add/remove one sequence of 24 bytes"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("perplexity"), std::string::npos) << log;
  const auto j = nlohmann::json::parse(lm_summary_json(r, config));
  for (const char* key :
       {"perplexity", "ema_perplexity", "epsilon", "delta", "noise_multiplier",
        "sample_rate", "steps", "accountant", "wall_seconds", "privacy_unit"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_DOUBLE_EQ(j.at("sample_rate").get<double>(), 0.2);
}

TEST_F(LmTraining, ResumedRunEqualsUninterruptedRun) {
  const datasets::TextDataset train(repetitive_text(20), 24);
  auto config = lm_config();
  config.model = "griffin-tiny";
  config.ema_decay = 0.5;
  auto full_model = tiny_model("griffin-tiny", 5);
  LmTrainer full(full_model, config);
  quiet(full);
  full.fit(train);

  auto part = config;
  part.steps = 2;
  part.checkpoint = path("lm.ckpt");
  LmTrainer first(tiny_model("griffin-tiny", 5), part);
  quiet(first);
  first.fit(train);

  auto resume = config;
  resume.checkpoint = path("lm.ckpt");
  resume.resume = true;
  auto resumed_model = tiny_model("griffin-tiny", 99);
  LmTrainer resumed(resumed_model, resume);
  quiet(resumed);
  const auto r = resumed.fit(train, &train);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.initial_eval.sequences, 0);  // not measured on the unloaded model
  const auto a = full_model->parameters();
  const auto b = resumed_model->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
  EXPECT_DOUBLE_EQ(resumed.epsilon(), full.epsilon());

  // A different sequence length is another run.
  auto other = resume;
  other.sequence_length = 12;
  LmTrainer refused(tiny_model("griffin-tiny", 5), other);
  quiet(refused);
  const auto msg = error_of<std::invalid_argument>(
      [&] { refused.fit(datasets::TextDataset(repetitive_text(20), 12)); });
  EXPECT_NE(msg.find("belongs to another run"), std::string::npos) << msg;
}

TEST_F(LmTraining, FrozenEmbeddingsAndChosenBlocksStayUnchanged) {
  const datasets::TextDataset train(repetitive_text(20), 24);
  auto config = lm_config();
  config.model = "griffin-tiny";
  config.train_blocks = {1};
  auto model = tiny_model("griffin-tiny", 2);
  const auto before = models::published_parameters(*model);
  LmTrainer trainer(model, config);
  quiet(trainer);
  trainer.fit(train);
  const auto after = models::published_parameters(*model);
  int changed = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    const bool same = torch::equal(before[i].second, after[i].second);
    if (before[i].first.rfind("blocks.1.", 0) == 0) {
      changed += same ? 0 : 1;
    } else {
      EXPECT_TRUE(same) << before[i].first << " should be frozen";
    }
  }
  EXPECT_GT(changed, 0);

  auto freeze = lm_config();
  freeze.freeze_embeddings = true;
  auto hawk = tiny_model("hawk-tiny", 2);
  const auto embedding = hawk->embedder->weight.detach().clone();
  LmTrainer frozen(hawk, freeze);
  quiet(frozen);
  frozen.fit(train);
  EXPECT_TRUE(torch::equal(embedding, hawk->embedder->weight));
}

TEST_F(LmTraining, CheckpointRebuildsTheModelForGeneration) {
  const datasets::TextDataset train(repetitive_text(20), 24);
  auto config = lm_config();
  config.checkpoint = path("gen.ckpt");
  auto model = tiny_model("hawk-tiny", 3);
  LmTrainer trainer(model, config);
  quiet(trainer);
  trainer.fit(train);
  const auto loaded = load_lm_checkpoint(config.checkpoint);
  EXPECT_EQ(loaded->config().name, "hawk-tiny");
  const auto a = model->parameters();
  const auto b = loaded->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::equal(a[i], b[i])) << i;
  GenerateRequest request;
  request.checkpoint = config.checkpoint;
  request.prompt = "the cat";
  request.num_tokens = 12;
  request.temperature = 0.7;
  request.seed = 5;
  const auto text = generate_from_checkpoint(request);
  EXPECT_EQ(text.size(), 12U);
  model->eval();
  EXPECT_EQ(text, model->generate("the cat", 12, {0.7, 5}));
}

TEST_F(LmTraining, WeightsFileIsTheReleaseArtefactGenerateReads) {
  // --save-weights writes weights and the model config, no training state;
  // generate --weights rebuilds the same model from it.
  const auto text = write_text("t.txt", repetitive_text(20));
  auto config = lm_config();
  config.dataset = "text:" + text;
  config.ema_decay = 0.9;
  config.save_weights = path("w.pt");
  config.summary = "";
  const auto run = run_lm_training(config);
  ASSERT_TRUE(fs::exists(path("w.pt")));
  ASSERT_TRUE(fs::exists(path("w.ema.pt")));
  torch::serialize::InputArchive in;
  in.load_from(path("w.pt"));
  const auto keys = in.keys();
  for (const char* state :
       {"sampler", "noise", "optimization", "privacy", "identity"}) {
    EXPECT_EQ(std::find(keys.begin(), keys.end(), state), keys.end()) << state;
  }
  auto model = load_lm_weights(path("w.pt"));
  const auto ema = load_lm_weights(path("w.ema.pt"));
  EXPECT_EQ(model->config().name, "hawk-tiny");
  bool ema_differs = false;
  const auto a = model->parameters();
  const auto b = ema->parameters();
  for (size_t i = 0; i < a.size(); ++i)
    ema_differs |= !torch::equal(a[i], b[i]);
  EXPECT_TRUE(ema_differs);
  GenerateRequest request;
  request.weights = path("w.pt");
  request.prompt = "the cat";
  request.num_tokens = 10;
  request.temperature = 0.7;
  request.seed = 5;
  model->eval();
  std::string streamed;
  request.on_text = [&](const std::string& piece) { streamed += piece; };
  const auto generated = generate_from_checkpoint(request);
  EXPECT_EQ(generated, model->generate("the cat", 10, {0.7, 5}));
  EXPECT_EQ(streamed, generated);  // each byte handed out as it was sampled
  request.checkpoint = path("c.ckpt");
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              generate_from_checkpoint(request);
            }).find("give one of --weights"),
            std::string::npos);
  request.checkpoint = "";
  request.weights = dir().string();
  EXPECT_EQ(
      error_of<std::runtime_error>([&] { generate_from_checkpoint(request); }),
      "--weights '" + dir().string() + "': not a regular file");
  config.save_weights = path("w.safetensors");
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              run_lm_training(config);
            }).find("--task lm writes a .pt file (weights and model config)"),
            std::string::npos);
}

TEST_F(LmTraining, HeldOutTailIsLabelledPrivateAndEvalDatasetIsPublic) {
  const auto text = write_text("t.txt", repetitive_text(20));
  const auto pub = write_text("public.txt", repetitive_text(4));
  auto config = lm_config();
  config.dataset = "text:" + text;
  auto summary = nlohmann::json::parse(run_lm_training(config).summary_json);
  EXPECT_EQ(summary.at("eval_split").get<std::string>(),
            "held-out tail of --dataset (private, not noised)");
  config.eval_dataset = pub;
  summary = nlohmann::json::parse(run_lm_training(config).summary_json);
  EXPECT_EQ(summary.at("eval_split").get<std::string>(),
            "public: --eval-dataset " + pub);
  EXPECT_EQ(summary.at("train_sequences").get<int>(),
            20);  // 480 bytes / 24: all of it
  EXPECT_EQ(summary.at("eval_sequences").get<int>(), 4);
}

TEST_F(LmTraining, GenerateErrorsNameTheFlag) {
  GenerateRequest r;
  r.checkpoint = path("none.ckpt");
  r.prompt = "x";
  auto bad = r;
  bad.prompt = "";
  EXPECT_EQ(
      error_of<std::invalid_argument>([&] { generate_from_checkpoint(bad); }),
      "--prompt must not be empty");
  bad = r;
  bad.num_tokens = -3;
  EXPECT_EQ(
      error_of<std::invalid_argument>([&] { generate_from_checkpoint(bad); }),
      "--num-tokens must be >= 0, got -3");
  bad = r;
  bad.temperature = -1;
  EXPECT_EQ(
      error_of<std::invalid_argument>([&] { generate_from_checkpoint(bad); }),
      "--temperature must be >= 0 (0 = greedy), got -1");
  EXPECT_NE(error_of<std::runtime_error>([&] {
              generate_from_checkpoint(r);
            }).find(path("none.ckpt")),
            std::string::npos);
}

TEST_F(LmTraining, RunErrorsNameTheFlag) {
  const auto file = write_text("t.txt", repetitive_text(10));
  auto c = lm_config();
  c.dataset = file;  // no text: prefix
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_lm_training(c); }),
            "--dataset for --task lm must be text:FILE or jsonl:FILE, got '" +
                file + "'");
  c.dataset = "text:" + file;
  c.model = "resnet-9000";
  EXPECT_EQ(error_of<std::invalid_argument>([&] {
              run_lm_training(c);
            }).rfind("--model: ", 0),
            0U);
  c.model = "hawk-tiny";
  c.train_blocks = {0, 7};
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              run_lm_training(c);
            }).find("--train-blocks 7 is not a block of --model hawk-tiny"),
            std::string::npos);
  c.train_blocks = {};
  c.init_checkpoint = path("w.bin");
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_lm_training(c); }),
            "--init-checkpoint must be a .safetensors or .h5 file, got '" +
                path("w.bin") + "'");
  c.init_checkpoint = "";
  c.sequence_length = 1;
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_lm_training(c); }),
            "--sequence-length must be >= 2, got 1");
  c.sequence_length = 200;  // 240 bytes: one sequence only
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              run_lm_training(c);
            }).find("at least 2 are needed"),
            std::string::npos);
  c.sequence_length = 24;
  c.augmult = 2;
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              run_lm_training(c);
            }).find("--augmult is for images"),
            std::string::npos);
  TrainConfig image;
  image.target_epsilon = 1;
  image.epochs = 1;
  image.freeze_embeddings = true;
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              image.validate();
            }).find("need --task lm"),
            std::string::npos);
}

TEST_F(LmTraining, InitCheckpointFromSafetensorsIsLoaded) {
  const auto file = write_text("t.txt", repetitive_text(20));
  auto source = tiny_model("hawk-tiny", 11);
  {
    torch::NoGradGuard g;
    for (auto& p : source->parameters()) p.add_(torch::randn_like(p) * 0.2);
  }
  models::write_safetensors(path("init.safetensors"),
                            models::published_parameters(*source));
  auto c = lm_config();
  c.dataset = "text:" + file;
  c.steps = 1;
  c.init_checkpoint = path("init.safetensors");
  const auto summary = nlohmann::json::parse(run_lm_training(c).summary_json);
  // The held-out tail is the last 10% (2 sequences); its perplexity before
  // training is the source model's.
  const datasets::TextDataset all(repetitive_text(20), 24);
  const auto tail = all.batch({18, 19});
  source->eval();
  torch::NoGradGuard g;
  const double expected =
      std::exp(source->sequence_losses(tail).mean().item<double>());
  EXPECT_NEAR(summary.at("initial_perplexity").get<double>(), expected,
              1e-4 * expected);
  EXPECT_EQ(summary.at("eval_sequences").get<int>(), 2);
}

// JSONL records of 12 users, each with 1-4 short records.
std::string user_records() {
  std::string out;
  const std::vector<std::string> texts = {"the cat sat", "on the mat.",
                                          "the dog sat on the log", "a cat"};
  for (int u = 0; u < 12; ++u) {
    for (int k = 0; k <= u % 4; ++k) {
      out += "{\"user\": \"u" + std::to_string(u) + "\", \"text\": \"" +
             texts[static_cast<size_t>(k)] + "\"}\n";
    }
  }
  return out;
}

TEST_F(LmTraining, UserLevelRunSamplesUsersAndAccountsForThem) {
  auto c = lm_config();
  c.dataset = "jsonl:" + write_text("r.jsonl", user_records());
  c.sequence_length = 16;
  c.privacy_unit = "user";
  c.records_per_user = 2;
  c.batch_size = 4;
  c.steps = 3;
  const auto run = run_lm_training(c);
  const auto j = nlohmann::json::parse(run.summary_json);
  // 12 users, the last round(0.1 · 12) = 1 held out: 11 train users whose
  // records are the first 1+2+3+4+1+2+3+4+1+2+3 = 26 lines.
  EXPECT_EQ(j.at("train_users").get<int>(), 11);
  EXPECT_EQ(j.at("train_sequences").get<int>(), 26);
  EXPECT_EQ(j.at("eval_sequences").get<int>(), 4);
  EXPECT_EQ(j.at("adjacency").get<std::string>(), "add_remove_one_user");
  EXPECT_EQ(j.at("privacy_unit").get<std::string>(),
            "one user (the mean over at most 2 of their records of 16 bytes, "
            "clipped once)");
  EXPECT_DOUBLE_EQ(j.at("sample_rate").get<double>(), 4.0 / 11.0);
  accountant::RdpAccountant rdp;
  rdp.compose({4.0 / 11.0, 0.5, 3});
  EXPECT_DOUBLE_EQ(j.at("epsilon").get<double>(),
                   rdp.get_epsilon(1e-5).epsilon);
  EXPECT_EQ(run.fit.users, 11);
  // Padded records: the held-out loss is a per-token mean over valid
  // predictions only (4 records of user 11, lengths 11, 11, 22→16, 5).
  EXPECT_EQ(run.fit.eval.tokens, 10 + 10 + 15 + 4);
}

TEST_F(LmTraining, RecordLevelJsonlAndUserLevelErrorsAreNamed) {
  auto c = lm_config();
  const auto file = write_text("r.jsonl", user_records());
  c.dataset = "jsonl:" + file;
  c.sequence_length = 16;
  c.steps = 1;
  const auto j = nlohmann::json::parse(run_lm_training(c).summary_json);
  EXPECT_EQ(j.at("adjacency").get<std::string>(), "add_remove_one_record");
  EXPECT_EQ(j.at("privacy_unit").get<std::string>(),
            "one record (cut or padded to 16 bytes)");
  EXPECT_EQ(
      j.at("train_sequences").get<int>() + j.at("eval_sequences").get<int>(),
      30);

  c.privacy_unit = "user";
  c.dataset = "text:" + write_text("t.txt", repetitive_text(10));
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_lm_training(c); }),
            "--privacy-unit user needs --dataset jsonl:FILE (records with a "
            "\"user\" field), got '" +
                c.dataset + "'");
  c.dataset = "jsonl:" + write_text("n.jsonl",
                                    "{\"user\": 1, \"text\": \"ab\"}\n"
                                    "{\"text\": \"cd\"}\n");
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_lm_training(c); }),
            "--dataset: " + path("n.jsonl") +
                ": line 2: has no \"user\" field (--privacy-unit user needs "
                "one on every record)");
  c.dataset = "jsonl:" + file;
  c.records_per_user = 0;
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_lm_training(c); }),
            "--records-per-user must be in [1, 4096], got 0");
  c.records_per_user = 2;
  c.privacy_unit = "person";
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              run_lm_training(c);
            }).find("--privacy-unit"),
            std::string::npos);
  // Without users, a hand-made data set refuses user level by name.
  auto user_config = lm_config();
  user_config.privacy_unit = "user";
  LmTrainer trainer(tiny_model("hawk-tiny", 1), user_config);
  quiet(trainer);
  EXPECT_EQ(error_of<std::invalid_argument>([&] {
              trainer.fit(datasets::TextDataset(repetitive_text(20), 24));
            }),
            "--privacy-unit user needs records with a \"user\" field "
            "(--dataset jsonl:FILE)");
}

TEST_F(LmTraining,
       SentencePieceTokenizerSetsTheVocabularyAndTravelsWithWeights) {
  const auto model_file = test_support::train_sentencepiece(path("sp"), 60);
  std::string text;
  for (int i = 0; i < 60; ++i)
    text += test_support::sentencepiece_corpus_line(i) + "\n";
  auto c = lm_config();
  c.dataset = "text:" + write_text("t.txt", text);
  c.tokenizer = model_file;
  c.sequence_length = 12;
  c.steps = 2;
  c.save_weights = path("w.pt");
  const auto j = nlohmann::json::parse(run_lm_training(c).summary_json);
  EXPECT_EQ(j.at("vocab_size").get<int>(), 60);
  EXPECT_EQ(j.at("tokenizer").get<std::string>(),
            "sentencepiece:" + model_file);
  EXPECT_EQ(j.at("privacy_unit").get<std::string>(),
            "one sequence of 12 tokens");
  auto model = load_lm_weights(path("w.pt"));
  EXPECT_EQ(model->config().vocab_size, 60);

  // generate decodes with the tokenizer stored in the weights file: the
  // same text as with the model file given, and the same as the model's
  // tokens decoded by hand.
  GenerateRequest request;
  request.weights = path("w.pt");
  request.prompt = "the cat";
  request.num_tokens = 6;
  request.temperature = 0;
  std::string streamed;
  request.on_text = [&](const std::string& piece) { streamed += piece; };
  const auto stored = generate_from_checkpoint(request);
  EXPECT_EQ(streamed, stored);
  request.on_text = nullptr;
  request.tokenizer = model_file;
  EXPECT_EQ(generate_from_checkpoint(request), stored);
  const auto tok = datasets::load_tokenizer(model_file);
  std::vector<int64_t> prompt = {tok->bos_id()};
  for (const auto id : tok->encode("the cat")) prompt.push_back(id);
  model->eval();
  const auto ids = model->generate_tokens(prompt, 6, {}, {}, tok->eos_id());
  std::vector<int32_t> kept = tok->encode("the cat");
  const auto prompt_text = tok->decode(kept);
  for (const auto id : ids) {
    if (id != tok->eos_id()) kept.push_back(static_cast<int32_t>(id));
  }
  EXPECT_EQ(prompt_text + stored, tok->decode(kept));

  // A tokenizer of another vocabulary is refused by name.
  request.tokenizer = test_support::train_sentencepiece(path("sp2"), 50);
  EXPECT_EQ(error_of<std::invalid_argument>(
                [&] { generate_from_checkpoint(request); }),
            "--tokenizer has a vocabulary of 50 but the model's is 60");
  c.tokenizer = path("none.model");
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_lm_training(c); }),
            "--tokenizer: " + path("none.model") +
                ": no such file (expected a SentencePiece tokenizer.model)");
}

}  // namespace
}  // namespace dptrain::train
