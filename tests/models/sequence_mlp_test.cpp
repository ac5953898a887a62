// SequenceMlp: shapes, parameter count, layer names, and bad input.
#include "dptrain/models/sequence_mlp.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace dptrain::models {
namespace {

void expect_invalid(const std::function<void()>& f, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << "no error, expected: " << what;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(SequenceMlp, MapsTokensToLogitsPerPosition) {
  torch::manual_seed(0);
  SequenceMlp model(SequenceMlpOptions().vocab_size(11).width(8).num_layers(2));
  auto tokens = torch::randint(11, {3, 5}, torch::kLong);
  auto logits = model->forward(tokens);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 5, 11}));
  // Rows are independent: the first example alone gives the same logits.
  auto alone = model->forward(tokens.narrow(0, 0, 1));
  EXPECT_TRUE(torch::allclose(alone[0], logits[0], 1e-5, 1e-6));
}

TEST(SequenceMlp, DefaultHasFourBlocksOfWidth256) {
  SequenceMlp model;
  int64_t n = 0;
  for (const auto& p : model->parameters()) n += p.numel();
  // embedding 256·256, 4 × (LayerNorm 2·256 + Linear 256·256 + 256),
  // RMSNorm 256, head 256·256 + 256.
  EXPECT_EQ(n, 65536 + 4 * (512 + 65792) + 256 + 65792);
  const auto names = model->named_parameters().keys();
  for (const char* name :
       {"embedding.weight", "blocks.3.norm.weight", "blocks.3.linear.weight",
        "final_norm.scale", "head.bias"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
}

TEST(SequenceMlp, RejectsBadOptionsAndInputs) {
  expect_invalid([] { SequenceMlp(SequenceMlpOptions().width(0)); },
                 "SequenceMlp: width must be >= 1, got 0");
  expect_invalid([] { SequenceMlp(SequenceMlpOptions().num_layers(-2)); },
                 "SequenceMlp: num_layers must be >= 1, got -2");
  expect_invalid([] { SequenceMlp(SequenceMlpOptions().vocab_size(0)); },
                 "SequenceMlp: vocab_size must be >= 1, got 0");
  SequenceMlp model(SequenceMlpOptions().vocab_size(5).width(4).num_layers(1));
  expect_invalid(
      [&] {
        model->forward(torch::zeros({2, 3}));
      },
      "SequenceMlp: tokens must be an int64 tensor [N, T], got "
      "Float [2, 3]");
  expect_invalid([&] { model->forward(torch::zeros({2}, torch::kLong)); },
                 "got Long [2]");
}

}  // namespace
}  // namespace dptrain::models
