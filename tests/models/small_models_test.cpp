// The tanh CNN and the MLP: shapes, parameter counts (by hand from the
// architecture), input checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dptrain/models/small_models.h"
#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::expect_error;

TEST(TanhCnn, ForwardShapeOnFashionMnist) {
  m::TanhCnn net;
  auto y = net->forward(torch::randn({5, 1, 28, 28}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{5, 10}));
}

TEST(TanhCnn, ParameterCountMatchesPapernotArchitecture) {
  // conv1 16·1·8·8 + 16 = 1040; conv2 32·16·4·4 + 32 = 8224;
  // fc1 512·32 + 32 = 16416; classifier 32·10 + 10 = 330.
  m::TanhCnn net;
  EXPECT_EQ(m::count_parameters(*net), 26010);
  EXPECT_EQ(net->fc1->options.in_features(), 512);
}

TEST(TanhCnn, OtherImageSizeSetsFirstLinear) {
  // 3×32×32: 32 → conv1 15 → pool 14 → conv2 6 → pool 5: 32·5·5 = 800.
  m::TanhCnn net(m::TanhCnnOptions().in_channels(3).image_size(32));
  EXPECT_EQ(net->fc1->options.in_features(), 800);
  EXPECT_EQ(net->forward(torch::randn({2, 3, 32, 32})).size(1), 10);
}

TEST(TanhCnn, RejectsWrongImageSize) {
  m::TanhCnn net;
  expect_error<std::invalid_argument>(
      [&] {
        net->forward(torch::randn({2, 1, 32, 32}));
      },
      "images must be 28x28");
  expect_error<std::invalid_argument>(
      [&] {
        net->forward(torch::randn({2, 3, 28, 28}));
      },
      "images must be [N, 1, H, W], got [2, 3, 28, 28]");
  expect_error<std::invalid_argument>(
      [] { m::TanhCnn(m::TanhCnnOptions().image_size(15)); },
      "image_size must be >= 16, got 15");
  // The smallest size leaves a 1×1 map: fc1 has conv2_channels inputs.
  EXPECT_EQ(m::TanhCnn(m::TanhCnnOptions().image_size(16))
                ->fc1->options.in_features(),
            32);
}

TEST(TanhCnn, RejectsZeroClasses) {
  expect_error<std::invalid_argument>(
      [] { m::TanhCnn(m::TanhCnnOptions().num_classes(0)); },
      "num_classes must be >= 1, got 0");
}

TEST(Mlp, ShapesAndCount) {
  m::Mlp net;  // 784 → 256 → 10
  EXPECT_EQ(m::count_parameters(*net), 784 * 256 + 256 + 256 * 10 + 10);
  EXPECT_EQ(net->forward(torch::randn({3, 1, 28, 28})).sizes(),
            (std::vector<int64_t>{3, 10}));
  m::Mlp deep(m::MlpOptions().hidden({8, 4}).image_size(4).num_classes(3));
  EXPECT_EQ(m::count_parameters(*deep), 16 * 8 + 8 + 8 * 4 + 4 + 4 * 3 + 3);
  EXPECT_TRUE(deep->named_parameters().contains("hidden.1.weight"));
}

TEST(Mlp, RejectsBadHiddenWidth) {
  expect_error<std::invalid_argument>(
      [] { m::Mlp(m::MlpOptions().hidden({0})); },
      "hidden width must be >= 1, got 0");
}

}  // namespace
