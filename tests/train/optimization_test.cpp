// The optimizer bundle's Polyak average: the uniform mean of the iterates
// from --polyak-start on, kept across a checkpoint.
#include "dptrain/train/optimization.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>
#include <vector>

namespace dptrain::train {
namespace {

TrainConfig sgd_config(std::int64_t polyak_start) {
  TrainConfig c;
  c.noise_multiplier = 1.0;
  c.steps = 5;
  c.lr = 0.5;
  c.polyak_start = polyak_start;
  return c;
}

// Runs `steps` SGD steps on w with gradient (step + 1)·g and returns the
// iterate after each step.
std::vector<torch::Tensor> run(Optimization& opt, torch::nn::Linear& model,
                               std::int64_t from, std::int64_t to) {
  std::vector<torch::Tensor> iterates;
  for (std::int64_t step = from; step < to; ++step) {
    for (auto& p : model->parameters()) {
      p.mutable_grad() = torch::full_like(p, static_cast<double>(step + 1)) *
                         torch::arange(p.numel(), p.options()).view(p.sizes());
    }
    opt.step(*model, step);
    iterates.push_back(model->weight.detach().clone());
  }
  return iterates;
}

TEST(PolyakAverage, IsTheMeanOfTheIteratesFromTheStartStep) {
  torch::manual_seed(1);
  torch::nn::Linear model(torch::nn::LinearOptions(3, 2));
  model->to(torch::kDouble);
  Optimization opt(model->parameters(), *model, sgd_config(2), 5);
  ASSERT_TRUE(opt.has_polyak());
  const auto iterates = run(opt, model, 0, 5);
  EXPECT_EQ(opt.polyak_updates(), 3);
  const auto expected = (iterates[2] + iterates[3] + iterates[4]) / 3.0;
  const auto last = model->weight.detach().clone();
  opt.swap_polyak(*model);
  EXPECT_TRUE(torch::allclose(model->weight, expected, 1e-12, 1e-12));
  opt.swap_polyak(*model);
  EXPECT_TRUE(torch::equal(model->weight, last));
}

TEST(PolyakAverage, OffByDefault) {
  torch::nn::Linear model(torch::nn::LinearOptions(3, 2));
  Optimization opt(model->parameters(), *model, sgd_config(-1), 5);
  EXPECT_FALSE(opt.has_polyak());
  run(opt, model, 0, 2);
  EXPECT_EQ(opt.polyak_updates(), 0);
}

TEST(PolyakAverage, SurvivesACheckpoint) {
  torch::manual_seed(2);
  torch::nn::Linear a(torch::nn::LinearOptions(3, 2));
  a->to(torch::kDouble);
  Optimization whole(a->parameters(), *a, sgd_config(1), 5);
  run(whole, a, 0, 5);

  torch::manual_seed(2);
  torch::nn::Linear c(torch::nn::LinearOptions(3, 2));
  c->to(torch::kDouble);
  std::stringstream bytes;
  {
    Optimization first(c->parameters(), *c, sgd_config(1), 5);
    run(first, c, 0, 3);
    torch::serialize::OutputArchive out;
    first.save(out);
    out.save_to(bytes);
  }
  Optimization second(c->parameters(), *c, sgd_config(1), 5);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  second.load(in);
  run(second, c, 3, 5);
  EXPECT_EQ(second.polyak_updates(), whole.polyak_updates());
  whole.swap_polyak(*a);
  second.swap_polyak(*c);
  EXPECT_TRUE(torch::allclose(a->weight, c->weight, 1e-12, 1e-12));
}

TEST(PolyakAverage, ACheckpointWithoutItIsRefused) {
  torch::nn::Linear model(torch::nn::LinearOptions(3, 2));
  std::stringstream bytes;
  {
    Optimization without(model->parameters(), *model, sgd_config(-1), 5);
    torch::serialize::OutputArchive out;
    without.save(out);
    out.save_to(bytes);
  }
  Optimization with(model->parameters(), *model, sgd_config(0), 5);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  try {
    with.load(in);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no Polyak average state"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace dptrain::train
