// User-level DP for language models: the rows a step lays out for its
// sampled users (user_rows), clipped by the engine, must equal the
// microbatch oracle's per-user clipping of the MEAN over each user's chosen
// records — in float64, with padded records and users of fewer records
// than the group size.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <random>
#include <set>

#include "dptrain/datasets/text_dataset.h"
#include "dptrain/dp/clipping/engine.h"
#include "dptrain/dp/clipping/oracle.h"
#include "dptrain/models/griffin.h"
#include "dptrain/train/lm_trainer.h"

namespace dptrain::train {
namespace {

std::vector<torch::Tensor> take_grads(models::Griffin& model) {
  std::vector<torch::Tensor> out;
  for (auto& p : model->parameters()) {
    out.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    p.mutable_grad() = torch::Tensor();
  }
  return out;
}

TEST(UserLevel, RowsLayOutEachUsersRecordsThenWeightlessPadding) {
  const std::vector<std::vector<int64_t>> by_user = {{0, 1, 2}, {3}, {4, 5}};
  std::mt19937_64 rng(3);
  const auto layout = user_rows(by_user, {1, 2, 0}, 2, rng);
  ASSERT_EQ(layout.rows.size(), 6u);
  EXPECT_EQ(layout.rows[0], 3);  // user 1: its one record ...
  EXPECT_EQ(layout.rows[1], 3);  // ... and a copy of it as padding
  EXPECT_EQ(layout.weights[0], 2.0);
  EXPECT_EQ(layout.weights[1], 0.0);
  EXPECT_EQ(
      std::vector<int64_t>(layout.rows.begin() + 2, layout.rows.begin() + 4),
      (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(layout.weights[2], 1.0);
  // User 0 has 3 records for 2 rows: two distinct ones, each record chosen
  // about equally often over many steps (2/3 of the time each).
  std::vector<int> chosen(3, 0);
  const int draws = 3000;
  for (int t = 0; t < draws; ++t) {
    const auto r = user_rows(by_user, {0}, 2, rng);
    ASSERT_NE(r.rows[0], r.rows[1]);
    ++chosen[static_cast<size_t>(r.rows[0])];
    ++chosen[static_cast<size_t>(r.rows[1])];
  }
  for (const int c : chosen) {
    // Binomial(3000, 2/3): sd ~26; 6 sd.
    EXPECT_NEAR(c, 2000, 160);
  }
  EXPECT_THROW(user_rows({{}}, {0}, 2, rng), std::out_of_range);
}

TEST(UserLevel, EngineOnWeightedRowsEqualsOracleOnEachUsersMean) {
  torch::manual_seed(21);
  auto model = models::Griffin(models::griffin_config("hawk-tiny"));
  model->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.3);
  }
  // 7 records of 2..6 tokens (L = 6, some padded) of 3 users.
  std::vector<std::vector<int32_t>> records;
  const std::vector<int> lengths = {6, 3, 5, 2, 6, 4, 6};
  for (const int n : lengths) {
    std::vector<int32_t> r;
    for (int t = 0; t < n; ++t) {
      r.push_back(
          static_cast<int32_t>(torch::randint(256, {1}).item<int64_t>()));
    }
    records.push_back(r);
  }
  const std::vector<int64_t> users = {0, 0, 0, 1, 2, 2, 2};
  const auto data = datasets::TextDataset::from_records(records, 6, 0, &users);
  const auto by_user = data.sequences_by_user();
  const int64_t group = 2;  // user 1 has 1 record (padding), users 0, 2: 3
  std::mt19937_64 rng(9);
  const std::vector<int64_t> sampled = {0, 1, 2};
  const auto layout = user_rows(by_user, sampled, group, rng);

  const auto losses_of = [&](const std::vector<int64_t>& rows) {
    return model->sequence_losses(data.batch(rows), {}, data.lengths(rows));
  };
  // User i's own records: the rows of weight > 0 in its group.
  const auto user_losses = [&](int64_t i) {
    std::vector<int64_t> real;
    for (int64_t k = 0; k < group; ++k) {
      const auto r = static_cast<size_t>(i * group + k);
      if (layout.weights[r] > 0) real.push_back(layout.rows[r]);
    }
    return losses_of(real);  // their mean: the user's gradient
  };
  // A clipping norm between the users' norms, so that some are clipped.
  const auto probe = dp::microbatch_clip_and_accumulate(
      *model, 3, user_losses, dp::ClippingOptions(1e30).diagnostics(true));
  take_grads(model);
  const double c = probe.diagnostics->norms.median().item<double>();
  const auto options = dp::ClippingOptions(c).diagnostics(true);
  const auto oracle =
      dp::microbatch_clip_and_accumulate(*model, 3, user_losses, options);
  const auto expected = take_grads(model);

  dp::GradientEngine engine(model, options);
  dp::ClipResult got;
  {
    auto recording = engine.record();
    const auto w = torch::tensor(layout.weights, torch::kDouble);
    got = engine.clip_and_accumulate(losses_of(layout.rows) * w, group);
  }
  const auto grads = take_grads(model);
  EXPECT_TRUE(torch::allclose(got.diagnostics->norms, oracle.diagnostics->norms,
                              1e-9, 1e-12))
      << got.diagnostics->norms << oracle.diagnostics->norms;
  EXPECT_GT(oracle.diagnostics->norms.max().item<double>(),
            c);  // someone was clipped
  ASSERT_EQ(grads.size(), expected.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    ASSERT_EQ(grads[i].defined(), expected[i].defined());
    if (!grads[i].defined()) continue;
    const double scale = std::max(expected[i].norm().item<double>(), 1e-300);
    EXPECT_LT((grads[i] - expected[i]).norm().item<double>() / scale, 1e-9)
        << i;
  }
}

}  // namespace
}  // namespace dptrain::train
