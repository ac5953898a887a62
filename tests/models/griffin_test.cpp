// Griffin / Hawk: configuration counts, the forward pass's structure
// (causality, document resets, scan), decoding against the full forward,
// exact per-example gradients of every parameter against the microbatch
// oracle in float64, and published-name HDF5 checkpoints.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/dp/layers/softplus_scale.h"
#include "dptrain/models/fine_tuning.h"
#include "dptrain/models/griffin.h"
#include "error_helpers.h"

namespace dp = dptrain::dp;
namespace m = dptrain::models;

namespace {

using dptrain::test_support::error_of;
using dptrain::test_support::expect_error;

// Random values for every parameter so that no gradient path is trivially
// zero (the reference init zeroes biases and norm scales).
void perturb(torch::nn::Module& model, double scale = 0.3) {
  torch::NoGradGuard g;
  for (auto& p : model.parameters()) p.add_(torch::randn_like(p) * scale);
}

m::Griffin tiny(const std::string& name,
                torch::ScalarType dtype = torch::kDouble) {
  auto model = m::Griffin(m::griffin_config(name));
  model->to(dtype);
  return model;
}

std::string h5_temp_path(const std::string& stem) {
  return testing::TempDir() + "/" + stem + "_" +
         std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         ".h5";
}

}  // namespace

// ------------------------------------------------------------- configs

TEST(GriffinConfig, RecurrentGemma2bParameterCount) {
  const auto c = m::griffin_config("recurrentgemma-2b");
  // Published: 2,682,862,080 parameters, 2,027,502,080 without embeddings.
  EXPECT_EQ(m::count_parameters(c), 2682862080LL);
  EXPECT_EQ(m::count_parameters(c, false), 2027502080LL);
  EXPECT_EQ(c.num_blocks(), 26);
  EXPECT_EQ(c.block_types[2], m::TemporalBlockType::kAttention);
  EXPECT_EQ(c.block_types[3], m::TemporalBlockType::kRecurrent);
}

TEST(GriffinConfig, MidSizeConfigsAreAbout25M) {
  // Hand count for width 512, E 1536, 8 heads: per block norms 1,024 + MLP
  // 2,361,856; recurrent 854,528; attention 590,336; final norm 512;
  // embedding 131,072.
  const int64_t block = 1024 + 2 * (512 * 1536 + 1536) + (1536 * 512 + 512);
  const int64_t rec =
      3 * (512 * 512 + 512) + (4 * 512 + 512) + (512 + 2 * (8 * 64 * 64 + 512));
  const int64_t att = 2 * 512 * 512 + 2 * 512 * 64 + 512;
  EXPECT_EQ(m::count_parameters(m::griffin_config("hawk-25m")),
            8 * (block + rec) + 512 + 256 * 512);
  EXPECT_EQ(m::count_parameters(m::griffin_config("griffin-25m")),
            8 * block + 6 * rec + 2 * att + 512 + 256 * 512);
}

TEST(GriffinConfig, CountMatchesInstantiatedModels) {
  auto custom = m::griffin_config("griffin-tiny");
  custom.lru_width = 24;
  custom.mlp_expanded_width = 20;
  custom.conv_width = 3;
  custom.vocab_size = 300;
  for (const auto& c : {m::griffin_config("griffin-tiny"),
                        m::griffin_config("hawk-tiny"), custom}) {
    m::Griffin model(c);
    EXPECT_EQ(model->num_parameters(), m::count_parameters(c)) << c.name;
    EXPECT_EQ(model->num_parameters(false), m::count_parameters(c, false))
        << c.name;
    EXPECT_EQ(m::count_parameters(c) - m::count_parameters(c, false),
              c.vocab_size * c.width);
  }
}

TEST(GriffinConfig, UnknownNameListsKnownNames) {
  const auto msg = error_of([] { m::griffin_config("griffin-huge"); });
  EXPECT_NE(msg.find("unknown Griffin model 'griffin-huge'"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("hawk-tiny"), std::string::npos) << msg;
}

TEST(GriffinConfig, ValidateNamesFieldAndValue) {
  auto c = m::griffin_config("griffin-tiny");
  c.num_heads = 3;
  expect_error<std::exception>(
      [&] { c.validate(); },
      "num_heads must be >= 1 and divide width (16), got 3");
  c = m::griffin_config("griffin-tiny");
  c.num_heads = 8;  // head_dim 2: RoPE on a quarter needs head_dim % 4 == 0
  expect_error<std::exception>([&] { c.validate(); }, "head_dim");
  c = m::griffin_config("hawk-tiny");
  c.block_types.clear();
  expect_error<std::exception>([&] { m::Griffin g(c); },
                               "block_types must not be empty");
  c = m::griffin_config("hawk-tiny");
  c.scan_chunk = 0;
  expect_error<std::exception>([&] { m::count_parameters(c); },
                               "scan_chunk must be >= 1, got 0");
}

// ------------------------------------------------------------- forward

TEST(Griffin, LogitsShapeAndSoftCap) {
  torch::manual_seed(1);
  auto model = tiny("griffin-tiny", torch::kFloat);
  {
    torch::NoGradGuard g;
    model->embedder->weight.mul_(1000.0);  // huge logits before the cap
  }
  auto tokens = torch::randint(256, {2, 7}, torch::kLong);
  auto logits = model->forward(tokens);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 7, 256}));
  EXPECT_LE(logits.abs().max().item<double>(), 30.0);
  EXPECT_GT(logits.abs().max().item<double>(), 29.0);
}

TEST(Griffin, RgLruDecayInitialisedInRange) {
  torch::manual_seed(2);
  m::Griffin model(m::griffin_config("hawk-tiny"));
  auto lru =
      model->blocks[0]->as<m::ResidualBlockImpl>()->recurrent_block->rg_lru;
  // a = exp(−softplus(Λ)) at c·r = 1.
  auto a = torch::exp(-torch::softplus(lru->a_param->param.to(torch::kDouble)));
  EXPECT_GE(a.min().item<double>(), 0.9 - 1e-6);
  EXPECT_LE(a.max().item<double>(), 0.999 + 1e-6);
}

TEST(Griffin, LinearScanMatchesPlainRecurrence) {
  torch::manual_seed(3);
  const int64_t b = 2, t = 11, d = 3;
  auto log_a = -torch::rand({b, t, d}, torch::kDouble) * 2;
  auto x = torch::randn({b, t, d}, torch::kDouble);
  auto reset = torch::zeros({b, t}, torch::kBool);
  reset[0][0] = true;
  reset[0][5] = true;
  reset[1][9] = true;
  auto h0 = torch::randn({b, d}, torch::kDouble);
  // Expected: the recurrence written out element by element.
  auto expected = torch::zeros({b, t, d}, torch::kDouble);
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t k = 0; k < d; ++k) {
      double h = h0[i][k].item<double>();
      for (int64_t s = 0; s < t; ++s) {
        const double a = reset[i][s].item<bool>()
                             ? 0.0
                             : std::exp(log_a[i][s][k].item<double>());
        h = a * h + x[i][s][k].item<double>();
        expected[i][s][k] = h;
      }
    }
  }
  for (int64_t chunk : {1, 3, 4, 16}) {
    auto got = m::detail::linear_scan(log_a, x, reset, h0, chunk);
    EXPECT_TRUE(torch::allclose(got, expected, 1e-12, 1e-12))
        << "chunk " << chunk;
  }
}

TEST(Griffin, IsCausal) {
  torch::manual_seed(4);
  auto model = tiny("griffin-tiny");
  perturb(*model);
  auto tokens = torch::randint(256, {1, 10}, torch::kLong);
  auto changed = tokens.clone();
  changed[0][6] = (tokens[0][6].item<int64_t>() + 1) % 256;
  torch::NoGradGuard g;
  auto a = model->forward(tokens), b = model->forward(changed);
  EXPECT_TRUE(
      torch::allclose(a.narrow(1, 0, 6), b.narrow(1, 0, 6), 1e-13, 1e-13));
  EXPECT_FALSE(torch::allclose(a.narrow(1, 6, 4), b.narrow(1, 6, 4)));
}

TEST(Griffin, DocumentBoundariesIsolateDocuments) {
  torch::manual_seed(5);
  for (const char* name : {"griffin-tiny", "hawk-tiny"}) {
    auto model = tiny(name);
    perturb(*model);
    auto tokens = torch::randint(256, {1, 11}, torch::kLong);
    // Documents [0, 5) and [5, 11) in one row.
    auto pos = torch::cat({torch::arange(5), torch::arange(6)}).view({1, 11});
    torch::NoGradGuard g;
    auto packed = model->forward(tokens, pos);
    auto first = model->forward(tokens.narrow(1, 0, 5));
    auto second = model->forward(tokens.narrow(1, 5, 6));
    EXPECT_TRUE(torch::allclose(packed.narrow(1, 0, 5), first, 1e-10, 1e-10))
        << name;
    EXPECT_TRUE(torch::allclose(packed.narrow(1, 5, 6), second, 1e-10, 1e-10))
        << name;
  }
}

TEST(Griffin, RejectsBadTokens) {
  auto model = tiny("hawk-tiny");
  expect_error<std::exception>(
      [&] {
        model->forward(torch::full({1, 3}, 256, torch::kLong));
      },
      "tokens must lie in [0, 256), got values in [256, 256]");
  expect_error<std::exception>(
      [&] { model->forward(torch::zeros({3}, torch::kLong)); },
      "tokens must be an int64 tensor [B, T]");
  expect_error<std::exception>(
      [&] {
        model->sequence_losses(torch::zeros({2, 1}, torch::kLong));
      },
      "L >= 2");
}

TEST(Griffin, SequenceLossesAreMeanNextByteCrossEntropy) {
  torch::manual_seed(6);
  auto model = tiny("hawk-tiny");
  auto seq = torch::randint(256, {3, 6}, torch::kLong);
  torch::NoGradGuard g;
  auto losses = model->sequence_losses(seq);
  auto logp = torch::log_softmax(model->forward(seq.narrow(1, 0, 5)), -1);
  for (int64_t i = 0; i < 3; ++i) {
    double sum = 0;
    for (int64_t t = 0; t < 5; ++t)
      sum -= logp[i][t][seq[i][t + 1].item<int64_t>()].item<double>();
    EXPECT_NEAR(losses[i].item<double>(), sum / 5, 1e-12);
  }
}

// ---------------------------------------------------------- decoding

TEST(Griffin, StepByStepDecodingEqualsFullForward) {
  torch::manual_seed(7);
  for (const char* name : {"griffin-tiny", "hawk-tiny"}) {
    auto model = tiny(name);
    perturb(*model);
    // 13 tokens > attention window 4: the ring buffer wraps.
    auto tokens = torch::randint(256, {2, 13}, torch::kLong);
    torch::NoGradGuard g;
    auto full = model->forward(tokens);
    auto state = model->initial_state(2);
    std::vector<int64_t> sizes_before;
    for (const auto& c : state.blocks) {
      for (const auto& t : {c.rnn, c.conv, c.keys, c.values}) {
        if (t.defined()) sizes_before.push_back(t.numel());
      }
    }
    for (int64_t t = 0; t < 13; ++t) {
      auto logits = model->step(tokens.select(1, t), state);
      EXPECT_TRUE(torch::allclose(logits, full.select(1, t), 1e-9, 1e-9))
          << name << " position " << t;
    }
    std::vector<int64_t> sizes_after;
    for (const auto& c : state.blocks) {
      for (const auto& t : {c.rnn, c.conv, c.keys, c.values}) {
        if (t.defined()) sizes_after.push_back(t.numel());
      }
    }
    EXPECT_EQ(sizes_before, sizes_after) << "the state must not grow";
    EXPECT_EQ(state.position, 13);
  }
}

TEST(Griffin, GenerateIsDeterministicAndChecksArguments) {
  torch::manual_seed(8);
  auto model = tiny("griffin-tiny", torch::kFloat);
  const auto a = model->generate("Hello", 12);
  const auto b = model->generate("Hello", 12);
  EXPECT_EQ(a.size(), 12u);
  EXPECT_EQ(a, b);
  // Greedy generation continues the argmax of the full forward pass.
  std::vector<int64_t> bytes = {'H', 'e', 'l', 'l', 'o'};
  for (char c : a) bytes.push_back(static_cast<unsigned char>(c));
  torch::NoGradGuard g;
  auto logits = model->forward(torch::tensor(bytes).view({1, -1}));
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(logits[0][4 + static_cast<int64_t>(i)].argmax().item<int64_t>(),
              static_cast<unsigned char>(a[i]));
  }
  const auto s1 = model->generate("Hi", 20, {1.0, 42});
  const auto s2 = model->generate("Hi", 20, {1.0, 42});
  EXPECT_EQ(s1, s2);
  expect_error<std::exception>([&] { model->generate("", 3); },
                               "prompt must not be empty");
  expect_error<std::exception>([&] { model->generate("a", -1); },
                               "num_bytes must be >= 0, got -1");
  expect_error<std::exception>(
      [&] {
        model->generate("a", 1, {-1.0, 0});
      },
      "temperature");
}

// ----------------------------------------------------------- privacy

namespace {

struct Grads {
  std::vector<torch::Tensor> grads;
  torch::Tensor norms;
};

// The model's .grad of every parameter (undefined where none) and the
// per-example norms of `r`.
Grads collect(m::Griffin& model, const dp::ClipResult& r) {
  Grads out;
  for (const auto& p : model->parameters()) {
    out.grads.push_back(p.grad().defined() ? p.grad().clone()
                                           : torch::Tensor());
  }
  out.norms = r.diagnostics->norms;
  return out;
}

Grads oracle_grads(m::Griffin& model, const torch::Tensor& seqs,
                   const torch::Tensor& pos, const dp::ClippingOptions& opts) {
  for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  auto r = dp::microbatch_clip_and_accumulate(
      *model, seqs.size(0),
      [&](int64_t i) {
        return model->sequence_losses(
            seqs.narrow(0, i, 1), pos.defined() ? pos.narrow(0, i, 1) : pos);
      },
      opts);
  return collect(model, r);
}

Grads engine_grads(m::Griffin& model, const torch::Tensor& seqs,
                   const torch::Tensor& pos, const dp::ClippingOptions& opts) {
  for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  dp::GradientEngine engine(model, opts);
  dp::ClipResult r;
  {
    auto recording = engine.record();
    r = engine.clip_and_accumulate(model->sequence_losses(seqs, pos));
  }
  return collect(model, r);
}

void expect_same(m::Griffin& model, const Grads& a, const Grads& b,
                 const std::string& what) {
  ASSERT_EQ(a.grads.size(), b.grads.size());
  EXPECT_TRUE(torch::allclose(a.norms, b.norms, 1e-9, 1e-12)) << what;
  const auto names = model->named_parameters();
  for (size_t i = 0; i < a.grads.size(); ++i) {
    const auto& key = names[i].key();
    ASSERT_EQ(a.grads[i].defined(), b.grads[i].defined()) << what << " " << key;
    if (!a.grads[i].defined()) continue;
    const double scale = std::max(b.grads[i].norm().item<double>(), 1e-300);
    EXPECT_LT((a.grads[i] - b.grads[i]).norm().item<double>() / scale, 1e-9)
        << what << " " << key;
  }
}

}  // namespace

namespace {
// Engine vs oracle, flat and per-layer, C = the median norm (some sequences
// clipped, some not); every parameter must receive a non-zero gradient.
void check_against_oracle(const char* name, bool segments) {
  torch::manual_seed(9);
  auto model = tiny(name);
  perturb(*model);
  auto seqs = torch::randint(256, {3, 9}, torch::kLong);
  torch::Tensor pos;
  if (segments) {  // a document boundary inside each row
    pos = torch::cat({torch::arange(3), torch::arange(6)})
              .view({1, 9})
              .repeat({3, 1});
  }
  auto probe = oracle_grads(model, seqs, pos,
                            dp::ClippingOptions(1e30).diagnostics(true));
  const double c = probe.norms.median().item<double>();
  for (auto mode : {dp::ClipMode::kFlat, dp::ClipMode::kPerLayer}) {
    const auto opts = dp::ClippingOptions(c).mode(mode).diagnostics(true);
    const auto want = oracle_grads(model, seqs, pos, opts);
    const auto got = engine_grads(model, seqs, pos, opts);
    expect_same(model, got, want,
                std::string(name) + (segments ? " segments" : "") +
                    (mode == dp::ClipMode::kFlat ? " flat" : " per-layer"));
    for (size_t i = 0; i < got.grads.size(); ++i) {
      ASSERT_TRUE(got.grads[i].defined());
      EXPECT_GT(got.grads[i].abs().max().item<double>(), 0.0)
          << name << " " << model->named_parameters()[i].key();
    }
  }
}
}  // namespace

TEST(GriffinPrivacy, GriffinMatchesMicrobatchOracle) {
  check_against_oracle("griffin-tiny", false);
}
TEST(GriffinPrivacy, GriffinWithDocumentsMatchesMicrobatchOracle) {
  check_against_oracle("griffin-tiny", true);
}
TEST(GriffinPrivacy, HawkMatchesMicrobatchOracle) {
  check_against_oracle("hawk-tiny", false);
}
TEST(GriffinPrivacy, HawkWithDocumentsMatchesMicrobatchOracle) {
  check_against_oracle("hawk-tiny", true);
}

TEST(GriffinPrivacy, FrozenEmbeddingsAndChosenBlocks) {
  torch::manual_seed(10);
  auto model = tiny("griffin-tiny");
  perturb(*model);
  auto seqs = torch::randint(256, {3, 8}, torch::kLong);
  const auto opts = dp::ClippingOptions(0.5).diagnostics(true);

  model->freeze_embeddings();
  {
    dp::GradientEngine engine(model, opts);
    EXPECT_EQ(static_cast<int64_t>(engine.parameters().size()),
              static_cast<int64_t>(model->parameters().size()) -
                  2)  // tied: listed twice
        << "the tied embedding must be frozen in both places";
  }
  expect_same(model, engine_grads(model, seqs, {}, opts),
              oracle_grads(model, seqs, {}, opts), "frozen embeddings");

  model->train_only_blocks({2});
  {
    dp::GradientEngine engine(model, opts);
    int64_t n = 0;
    for (const auto& p : engine.parameters()) n += p.numel();
    int64_t block = 0;
    for (const auto& p : model->blocks[2]->parameters()) block += p.numel();
    EXPECT_EQ(n, block);
  }
  expect_same(model, engine_grads(model, seqs, {}, opts),
              oracle_grads(model, seqs, {}, opts), "block 2 only");
  expect_error<std::exception>([&] { model->train_only_blocks({3}); },
                               "block index must be in [0, 3), got 3");
}

// LoRA on Griffin's block Linears: only the adapters train, the engine
// clips their per-sequence gradients as the microbatch oracle does (float64),
// frozen base weights get no gradient, and the merged model computes the
// same function without adapters.
TEST(Griffin, PaddedSequenceLossesAreThoseOfTheTruncatedSequences) {
  torch::manual_seed(31);
  auto model = tiny("griffin-tiny");
  perturb(*model);
  const auto seqs = torch::randint(256, {3, 8}, torch::kLong);
  const std::vector<int64_t> lengths = {8, 3, 5};
  // Padding: whatever follows a row's valid tokens must not matter.
  auto padded = seqs.clone();
  for (int64_t b = 0; b < 3; ++b) {
    padded[b]
        .narrow(0, lengths[static_cast<size_t>(b)],
                8 - lengths[static_cast<size_t>(b)])
        .fill_(7);
  }
  const auto got =
      model->sequence_losses(padded, {}, torch::tensor(lengths, torch::kLong));
  for (int64_t b = 0; b < 3; ++b) {
    const auto row =
        seqs.narrow(0, b, 1).narrow(1, 0, lengths[static_cast<size_t>(b)]);
    EXPECT_NEAR(got[b].item<double>(),
                model->sequence_losses(row).item<double>(), 1e-12)
        << "row " << b;
  }
  expect_error<std::invalid_argument>(
      [&] {
        model->sequence_losses(padded, {}, torch::tensor({8, 1, 5}));
      },
      "lengths must be in [2, 8]");
  expect_error<std::invalid_argument>(
      [&] {
        model->sequence_losses(padded, {}, torch::tensor({8, 5}));
      },
      "lengths must be [B] = [3]");
  // generate_tokens over the whole vocabulary: greedy equals the byte
  // generate for a byte vocabulary, and stops after the stop id.
  model->eval();
  const auto ids = model->generate_tokens({116, 104, 101}, 5);
  std::string bytes;
  for (const auto id : ids) bytes.push_back(static_cast<char>(id));
  EXPECT_EQ(bytes, model->generate("the", 5));
  const auto stopped =
      model->generate_tokens({116, 104, 101}, 5, {}, {}, ids[1]);
  EXPECT_EQ(stopped.size(), ids[0] == ids[1] ? 1u : 2u);
  expect_error<std::invalid_argument>(
      [&] { model->generate_tokens({256}, 1); },
      "prompt id 256 is outside the vocabulary [0, 256)");
}

TEST(GriffinLora, AdaptersMatchTheMicrobatchOracleAndMergeExactly) {
  torch::manual_seed(12);
  auto model = tiny("griffin-tiny");
  perturb(*model);
  const auto adapted = m::add_lora(
      *model, m::LoraOptions{/*rank=*/2, /*alpha=*/4.0, "blocks\\."});
  ASSERT_FALSE(adapted.empty());
  int64_t adapter_params = 0;
  for (const auto& p : model->named_parameters()) {
    const bool adapter = p.key().find("lora_") != std::string::npos;
    EXPECT_EQ(p.value().requires_grad(), adapter) << p.key();
    if (adapter) adapter_params += p.value().numel();
  }
  // B starts at zero: the adapted model is the base model at first.
  auto seqs = torch::randint(256, {3, 9}, torch::kLong);
  auto base = tiny("griffin-tiny");
  m::copy_merged_lora(*model, *base);
  EXPECT_TRUE(torch::allclose(model->sequence_losses(seqs, {}),
                              base->sequence_losses(seqs, {}), 0, 0));
  {
    torch::NoGradGuard g;
    for (auto& p : model->named_parameters()) {
      if (p.key().find("lora_b") != std::string::npos)
        p.value().copy_(torch::randn_like(p.value()) * 0.3);
    }
  }
  const auto probe = oracle_grads(model, seqs, {},
                                  dp::ClippingOptions(1e30).diagnostics(true));
  const double c = probe.norms.median().item<double>();
  const auto opts = dp::ClippingOptions(c).diagnostics(true);
  {
    dp::GradientEngine engine(model, opts);
    int64_t n = 0;
    for (const auto& p : engine.parameters()) n += p.numel();
    EXPECT_EQ(n, adapter_params) << "the engine works on the adapters only";
  }
  const auto got = engine_grads(model, seqs, {}, opts);
  expect_same(model, got, oracle_grads(model, seqs, {}, opts), "lora");
  const auto names = model->named_parameters();
  for (size_t i = 0; i < got.grads.size(); ++i) {
    const bool adapter = names[i].key().find("lora_") != std::string::npos;
    EXPECT_EQ(got.grads[i].defined(), adapter) << names[i].key();
  }
  // Merged: the same losses from a model without adapters.
  auto merged = tiny("griffin-tiny");
  m::copy_merged_lora(*model, *merged);
  EXPECT_TRUE(torch::allclose(model->sequence_losses(seqs, {}),
                              merged->sequence_losses(seqs, {}), 1e-12, 1e-12));
  for (const auto& p : merged->named_parameters()) {
    EXPECT_EQ(p.key().find("lora_"), std::string::npos);
  }
}

TEST(GriffinLora, BadOptionsAndTiedHeadsAreRefusedByName) {
  auto model = tiny("griffin-tiny");
  expect_error<std::invalid_argument>(
      [&] {
        m::add_lora(*model, {2, 0.0, "no_such_layer"});
      },
      "LoRA layers pattern 'no_such_layer' matches no Linear layer");
  expect_error<std::invalid_argument>(
      [&] {
        m::add_lora(*model, {2, 0.0, "("});
      },
      "is not a valid regex");
  expect_error<std::invalid_argument>(
      [&] {
        m::add_lora(*model, {0, 0.0, "blocks\\."});
      },
      "LoRA rank must be >= 1, got 0");
  // The decoder shares the embedding's weight.
  expect_error<std::invalid_argument>(
      [&] {
        m::add_lora(*tiny("griffin-tiny"), {2, 0.0, "^decoder$"});
      },
      "LoRA on 'decoder': its weight is tied to 'embedder.weight'");
}

TEST(SoftplusScale, ForwardAndRuleMatchOracle) {
  torch::manual_seed(11);
  auto layer = dp::SoftplusScale(dp::ElementwiseOptions({3}).init(0.5));
  auto net = std::make_shared<torch::nn::Module>();
  net->register_module("s", layer);
  net->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    layer->param.copy_(torch::tensor({-2.0, 0.5, 25.0}, torch::kDouble));
  }
  auto x = torch::randn({4, 5, 3}, torch::kDouble);
  auto y = layer(x);
  EXPECT_TRUE(torch::allclose(y, x * torch::log1p(torch::exp(layer->param)),
                              1e-12, 1e-12));
  auto r = torch::randn({4, 5, 3}, torch::kDouble);
  auto loss_of = [&](const torch::Tensor& in, const torch::Tensor& rr) {
    auto out = layer(in);
    return (out * rr + out * out).sum({1, 2});
  };
  const auto opts = dp::ClippingOptions(0.7).diagnostics(true);
  layer->param.mutable_grad() = torch::Tensor();
  auto want_r = dp::microbatch_clip_and_accumulate(
      *net, 4,
      [&](int64_t i) { return loss_of(x.narrow(0, i, 1), r.narrow(0, i, 1)); },
      opts);
  auto want = layer->param.grad().clone();
  layer->param.mutable_grad() = torch::Tensor();
  dp::GradientEngine engine(net, opts);
  dp::ClipResult got_r;
  {
    auto rec = engine.record();
    got_r = engine.clip_and_accumulate(loss_of(x, r));
  }
  EXPECT_TRUE(torch::allclose(got_r.diagnostics->norms,
                              want_r.diagnostics->norms, 1e-10, 1e-12));
  EXPECT_TRUE(torch::allclose(layer->param.grad(), want, 1e-10, 1e-12));
  expect_error<std::exception>(
      [] { dp::SoftplusScale(dp::ElementwiseOptions({0})); },
      "shape entries must be > 0");
}

// --------------------------------------------------------- checkpoints

TEST(GriffinCheckpoint, Hdf5RoundTripByPublishedNames) {
  torch::manual_seed(12);
  auto src = tiny("griffin-tiny", torch::kFloat);
  perturb(*src);
  const auto path = h5_temp_path("griffin_roundtrip");
  m::save_griffin_hdf5(*src, path);
  torch::manual_seed(13);
  auto dst = tiny("griffin-tiny", torch::kFloat);
  auto tokens = torch::randint(256, {2, 6}, torch::kLong);
  torch::NoGradGuard g;
  EXPECT_FALSE(torch::allclose(src->forward(tokens), dst->forward(tokens)));
  m::load_griffin_hdf5(*dst, path);
  EXPECT_TRUE(
      torch::allclose(src->forward(tokens), dst->forward(tokens), 1e-6, 1e-6));

  // Spot-check names and layouts in the file with the HDF5 API.
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  auto read = [&](const std::string& name, std::vector<hsize_t> dims) {
    hid_t set = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
    EXPECT_GE(set, 0) << name;
    hid_t space = H5Dget_space(set);
    std::vector<hsize_t> got(
        static_cast<size_t>(H5Sget_simple_extent_ndims(space)));
    H5Sget_simple_extent_dims(space, got.data(), nullptr);
    EXPECT_EQ(got, dims) << name;
    std::vector<int64_t> shape(dims.begin(), dims.end());
    auto t = torch::empty(shape, torch::kFloat);
    H5Dread(set, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
            t.data_ptr<float>());
    H5Sclose(space);
    H5Dclose(set);
    return t;
  };
  auto* b0 = src->blocks[0]->as<m::ResidualBlockImpl>();
  auto lru = b0->recurrent_block->rg_lru;
  EXPECT_TRUE(
      torch::equal(read("blocks.0.recurrent_block.rg_lru.a_param", {16}),
                   lru->a_param->param));
  auto gate_w = read("blocks.0.recurrent_block.rg_lru.input_gate.w", {2, 8, 8});
  EXPECT_TRUE(torch::equal(
      gate_w[1], lru->input_gate[1]->as<dp::LinearImpl>()->weight.t()));
  auto conv_w = read("blocks.1.recurrent_block.conv_1d.w", {4, 16});
  EXPECT_TRUE(torch::equal(conv_w[3],
                           src->blocks[1]
                               ->as<m::ResidualBlockImpl>()
                               ->recurrent_block->conv_1d->weight.select(2, 3)
                               .squeeze(1)));
  read("blocks.2.attention_block.proj_k.weight", {8, 16});
  auto up = read("blocks.2.mlp_block.ffw_up.w", {2, 16, 48});
  EXPECT_TRUE(torch::equal(up[0], src->blocks[2]
                                      ->as<m::ResidualBlockImpl>()
                                      ->mlp_block->ffw_gate->weight.t()));
  read("blocks.2.mlp_block.ffw_up.b", {2, 1, 1, 48});
  EXPECT_TRUE(torch::equal(read("embedder.input_embedding", {256, 16}),
                           src->embedder->weight));
  read("final_norm.scale", {16});
  H5Fclose(file);
  std::remove(path.c_str());
}

TEST(GriffinCheckpoint, ConvLastTapWeighsTheCurrentInput) {
  // Reference Conv1D: w[K−1] multiplies x_t. With only that row set to 1 the
  // convolution is the identity.
  auto model = tiny("hawk-tiny");
  auto params = m::published_parameters(*model);
  for (auto& [name, t] : params) {
    if (name == "blocks.0.recurrent_block.conv_1d.w") {
      t.zero_();
      t[3].fill_(1.0);
    }
    if (name == "blocks.0.recurrent_block.conv_1d.b") t.zero_();
  }
  m::load_published_parameters(*model, params);
  auto conv =
      model->blocks[0]->as<m::ResidualBlockImpl>()->recurrent_block->conv_1d;
  auto x = torch::randn({2, 16, 5}, torch::kDouble);
  torch::NoGradGuard g;
  EXPECT_TRUE(torch::allclose(conv(x), x));
}

TEST(GriffinCheckpoint, ErrorsNameFileDatasetAndShape) {
  auto model = tiny("hawk-tiny", torch::kFloat);
  expect_error<std::exception>(
      [&] { m::load_griffin_hdf5(*model, "/nonexistent/x.h5"); },
      "cannot open Griffin checkpoint '/nonexistent/x.h5'");
  auto params = m::published_parameters(*model);
  auto missing = params;
  missing.erase(missing.begin() + 3);
  const std::string name3 = params[3].first;
  expect_error<std::exception>(
      [&] { m::load_published_parameters(*model, missing); },
      "missing parameter '" + name3 + "'");
  auto wrong = params;
  wrong[0].second = torch::zeros({255, 16});
  expect_error<std::exception>(
      [&] { m::load_published_parameters(*model, wrong); },
      "'embedder.input_embedding' has shape [255, 16], the "
      "model expects [256, 16]");
  // A file saved from a wider model: the shape mismatch names the dataset.
  auto other = m::griffin_config("hawk-tiny");
  other.width = 32;
  m::Griffin wide(other);
  const auto path = h5_temp_path("griffin_wide");
  m::save_griffin_hdf5(*wide, path);
  const auto msg = error_of([&] { m::load_griffin_hdf5(*model, path); });
  EXPECT_NE(msg.find("dataset 'embedder.input_embedding' has shape [256, 32], "
                     "the model expects [256, 16]"),
            std::string::npos)
      << msg;
  std::remove(path.c_str());
}
