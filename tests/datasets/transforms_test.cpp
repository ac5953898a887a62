#include "dptrain/datasets/transforms.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

#include "test_util.h"

namespace dptrain::datasets {
namespace {

using testing::error_of;
using ::testing::HasSubstr;

at::Tensor random_images(int64_t b, int64_t c, int64_t h, int64_t w,
                         uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  return torch::randint(0, 256, {b, c, h, w}, g, torch::kLong).to(torch::kByte);
}

// Every (dy, dx, flip) crop of `image` [C, H, W] padded by p, computed with
// torch's own padding ops (independent of the code under test).
std::vector<at::Tensor> candidates(const at::Tensor& image, int64_t p,
                                   PadMode mode) {
  auto x = image.to(torch::kFloat).unsqueeze(0);
  auto padded = mode == PadMode::kZero
                    ? torch::constant_pad_nd(x, {p, p, p, p}, 0)
                    : torch::reflection_pad2d(x, {p, p, p, p});
  std::vector<at::Tensor> out;
  const int64_t H = image.size(1), W = image.size(2);
  for (int64_t dy = 0; dy <= 2 * p; ++dy)
    for (int64_t dx = 0; dx <= 2 * p; ++dx) {
      auto crop = padded[0].narrow(1, dy, H).narrow(2, dx, W);
      out.push_back(crop);
      out.push_back(crop.flip({2}));
    }
  return out;
}

// Index of the candidate `view` equals, or -1.
int match(const at::Tensor& view, const std::vector<at::Tensor>& cands) {
  for (size_t i = 0; i < cands.size(); ++i) {
    if (torch::equal(view.to(torch::kFloat), cands[i]))
      return static_cast<int>(i);
  }
  return -1;
}

TEST(UniformIndex, CoversRangeUniformly) {
  std::mt19937_64 rng(3);
  std::vector<int> hits(6, 0);
  for (int i = 0; i < 6000; ++i) ++hits[uniform_index(rng, 6)];
  double chi2 = 0;
  for (int h : hits) chi2 += (h - 1000.0) * (h - 1000.0) / 1000.0;
  EXPECT_LT(chi2, 20.52);  // chi-square, 5 dof, 99.9% quantile
  EXPECT_EQ(uniform_index(rng, 1), 0u);
  EXPECT_THROW(uniform_index(rng, 0), std::invalid_argument);
}

TEST(ToFloat, ScalesToUnitInterval) {
  auto x = torch::tensor({0, 51, 255}, torch::kLong).to(torch::kByte);
  auto f = to_float(x);
  EXPECT_EQ(f.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::allclose(f, torch::tensor({0.0f, 0.2f, 1.0f})));
}

TEST(ChannelStats, MatchesHandComputedValues) {
  // Channel 0: half the pixels 0, half 255 -> mean 0.5, std 0.5.
  // Channel 1: all 51 -> mean 0.2, std 0.
  auto x = torch::zeros({2, 2, 2, 2}, torch::kByte);
  x.select(1, 0).select(1, 0).fill_(255);
  x.select(1, 1).fill_(51);
  const ImageDataset d(x, torch::zeros({2}, torch::kLong), 1);
  const auto s = compute_channel_stats(d);
  ASSERT_EQ(s.mean.size(), 2u);
  EXPECT_NEAR(s.mean[0], 0.5, 1e-12);
  EXPECT_NEAR(s.std[0], 0.5, 1e-12);
  EXPECT_NEAR(s.mean[1], 0.2, 1e-12);
  EXPECT_NEAR(s.std[1], 0.0, 1e-6);
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [] { compute_channel_stats(ImageDataset()); }),
              HasSubstr("the data set is empty"));
}

TEST(Standardize, SubtractsMeanAndDividesByStdPerChannel) {
  auto x = torch::zeros({1, 2, 1, 2}, torch::kByte);
  x[0][0].fill_(255);  // channel 0 = 1.0, channel 1 = 0.0
  const auto y = standardize(x, {{0.5, 0.25}, {0.25, 0.5}});
  EXPECT_TRUE(torch::allclose(y[0][0], torch::full({1, 2}, 2.0f)));
  EXPECT_TRUE(torch::allclose(y[0][1], torch::full({1, 2}, -0.5f)));
  EXPECT_EQ(standardize(x[0], {{0.5, 0.25}, {0.25, 0.5}}).dim(), 3);
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] {
        standardize(x, {{0.5}, {0.5}});
      }),
      HasSubstr("stats have 1 means and 1 stds, images have 2 channels"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] {
                standardize(x, {{0.5, 0.5}, {0.5, 0.0}});
              }),
              HasSubstr("std must be > 0, got 0"));
}

TEST(AugmentViews, WithoutPaddingOrFlipIsIdentity) {
  const auto x = random_images(3, 2, 5, 4, 1);
  std::mt19937_64 rng(0);
  AugmentOptions o;
  o.padding = 0;
  o.horizontal_flip = false;
  const auto v = augment_views(x, 2, o, rng);
  ASSERT_EQ(v.sizes(), (std::vector<int64_t>{6, 2, 5, 4}));
  EXPECT_EQ(v.scalar_type(), torch::kByte);
  for (int64_t i = 0; i < 6; ++i) EXPECT_TRUE(torch::equal(v[i], x[i / 2]));
}

// Each view is one of the 2(2p+1)^2 crops+flips, and over many views every
// one of them turns up about equally often.
void check_views_cover_candidates(PadMode mode) {
  const int64_t p = 1, K = 720;
  const auto x = random_images(1, 3, 6, 5, 2);
  AugmentOptions o;
  o.padding = p;
  o.pad_mode = mode;
  std::mt19937_64 rng(11);
  const auto v = augment_views(x, K, o, rng);
  const auto cands = candidates(x[0], p, mode);
  std::map<int, int> hits;
  for (int64_t i = 0; i < K; ++i) {
    const int m = match(v[i], cands);
    ASSERT_GE(m, 0) << "view " << i << " is no crop/flip of the image";
    ++hits[m];
  }
  ASSERT_EQ(hits.size(), cands.size());
  const double expected = static_cast<double>(K) / cands.size();
  double chi2 = 0;
  for (auto [m, h] : hits) chi2 += (h - expected) * (h - expected) / expected;
  EXPECT_LT(chi2, 40.79);  // chi-square, 17 dof, 99.9% quantile
}

TEST(AugmentViews, ReflectViewsAreUniformOverCropsAndFlips) {
  check_views_cover_candidates(PadMode::kReflect);
}

TEST(AugmentViews, ZeroPadViewsAreUniformOverCropsAndFlips) {
  check_views_cover_candidates(PadMode::kZero);
}

TEST(AugmentViews, RowsIKToIKPlusKMinus1BelongToExampleI) {
  const int64_t B = 3, K = 4;
  const auto x = random_images(B, 1, 4, 4, 5);
  std::mt19937_64 rng(9);
  AugmentOptions o;
  o.padding = 2;
  o.pad_mode = PadMode::kZero;
  const auto v = augment_views(x, K, o, rng);
  ASSERT_EQ(v.size(0), B * K);
  for (int64_t i = 0; i < B; ++i) {
    const auto cands = candidates(x[i], 2, PadMode::kZero);
    for (int64_t j = 0; j < K; ++j) {
      EXPECT_GE(match(v[i * K + j], cands), 0) << "row " << i * K + j;
    }
  }
}

TEST(AugmentViews, IsDeterministicUnderSeedAndSameForFloat) {
  const auto x = random_images(4, 3, 8, 8, 3);
  AugmentOptions o;
  std::mt19937_64 a(5), b(5), c(6), f(5);
  const auto va = augment_views(x, 3, o, a);
  EXPECT_TRUE(torch::equal(va, augment_views(x, 3, o, b)));
  EXPECT_FALSE(torch::equal(va, augment_views(x, 3, o, c)));
  const auto vf = augment_views(x.to(torch::kFloat), 3, o, f);
  EXPECT_EQ(vf.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(vf, va.to(torch::kFloat)));
}

TEST(AugmentViews, FlipOffNeverFlips) {
  const auto x = random_images(1, 1, 4, 6, 8);
  AugmentOptions o;
  o.padding = 0;
  o.horizontal_flip = false;
  std::mt19937_64 rng(1);
  const auto v = augment_views(x, 50, o, rng);
  EXPECT_TRUE(torch::equal(v, x.expand({50, 1, 4, 6})));
  o.horizontal_flip = true;
  const auto w = augment_views(x, 200, o, rng);
  const auto flipped = x[0].flip({2});
  int64_t n = 0;
  for (int64_t i = 0; i < 200; ++i) n += torch::equal(w[i], flipped);
  // Binomial(200, 1/2): mean 100, sd 7.07; +-4.5 sd.
  EXPECT_GT(n, 68);
  EXPECT_LT(n, 132);
}

TEST(AugmentViews, RejectsBadArguments) {
  const auto x = random_images(1, 1, 4, 4, 0);
  std::mt19937_64 rng(0);
  AugmentOptions o;
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] { augment_views(x, 0, o, rng); }),
      HasSubstr("k (augmentation multiplicity) must be >= 1, got 0"));
  o.padding = 4;
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] { augment_views(x, 1, o, rng); }),
      HasSubstr("reflect padding must be < height and width, got "
                "padding 4 for 4x4 images"));
  o.pad_mode = PadMode::kZero;
  EXPECT_EQ(augment_views(x, 1, o, rng).size(0), 1);  // zero padding may exceed
  o.padding = -1;
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] { augment_views(x, 1, o, rng); }),
      HasSubstr("padding must be >= 0, got -1"));
  o.padding = 0;
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] { augment_views(x[0], 1, o, rng); }),
      HasSubstr("images must be [B, C, H, W], got 3 dimensions"));
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { augment_views(x.to(torch::kDouble), 1, o, rng); }),
              HasSubstr("must be uint8 or float32, got Double"));
}

TEST(Augment, OneImage) {
  const auto x = random_images(1, 2, 5, 5, 4)[0];
  std::mt19937_64 rng(2);
  const auto v = augment(x, {}, rng);
  ASSERT_EQ(v.sizes(), x.sizes());
  EXPECT_GE(match(v, candidates(x, 4, PadMode::kReflect)), 0);
}

TEST(GetAugmentedBatch, RepeatsLabelsPerView) {
  auto x = random_images(4, 1, 4, 4, 6);
  const ImageDataset d(x, torch::tensor({0, 1, 2, 3}, torch::kLong), 4,
                       torch::tensor({5, 6, 7, 8}, torch::kLong));
  std::mt19937_64 rng(1);
  AugmentOptions o;
  o.padding = 1;
  const Batch b = get_augmented_batch(d, {2, 0}, 3, o, rng);
  ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{6, 1, 4, 4}));
  EXPECT_TRUE(
      torch::equal(b.labels, torch::tensor({2, 2, 2, 0, 0, 0}, torch::kLong)));
  EXPECT_TRUE(
      torch::equal(b.groups, torch::tensor({7, 7, 7, 5, 5, 5}, torch::kLong)));
  const auto cands = candidates(x[2], 1, PadMode::kReflect);
  EXPECT_GE(match(b.images[1], cands), 0);
}

// Random-resized crop: each view is the bilinear resize of its box by
// torch's own interpolate (align_corners = false), mirrored when flipped. The
// boxes are replayed from the same seed in the documented draw order (box,
// then the flip coin).
TEST(RandomResizedCrop, ViewsAreTorchBilinearResizesOfTheirBoxes) {
  const int64_t H = 12, W = 10, k = 3;
  AugmentOptions o;
  o.random_resized_crop = true;
  o.scale_min = 0.1;
  const auto bytes = random_images(2, 3, H, W, 8);
  for (const bool as_float : {true, false}) {
    const auto images = as_float ? bytes.to(torch::kFloat) : bytes;
    std::mt19937_64 rng(5);
    const auto views = augment_views(images, k, o, rng);
    ASSERT_EQ(views.sizes(), (std::vector<int64_t>{2 * k, 3, H, W}));
    std::mt19937_64 replay(5);
    for (int64_t v = 0; v < 2 * k; ++v) {
      const auto box =
          random_resized_box(H, W, o.scale_min, o.scale_max, replay);
      const bool flip = uniform_index(replay, 2) == 1;
      const auto crop = bytes[v / k]
                            .to(torch::kFloat)
                            .narrow(1, box.y0, box.h)
                            .narrow(2, box.x0, box.w)
                            .unsqueeze(0);
      auto ref = torch::nn::functional::interpolate(
          crop, torch::nn::functional::InterpolateFuncOptions()
                    .size(std::vector<int64_t>{H, W})
                    .mode(torch::kBilinear)
                    .align_corners(false))[0];
      if (flip) ref = ref.flip({2});
      const double diff =
          (views[v].to(torch::kFloat) - ref).abs().max().item<double>();
      // Float: the same arithmetic up to rounding; uint8: rounded to nearest.
      EXPECT_LE(diff, as_float ? 1e-3 : 0.5 + 1e-3)
          << "view " << v << " box " << box.y0 << "," << box.x0 << " " << box.h
          << "x" << box.w;
    }
  }
}

TEST(RandomResizedCrop, BoxesFitAndFollowTheScaleAndAspectRanges) {
  std::mt19937_64 rng(11);
  const int64_t H = 32, W = 32;
  double area_sum = 0;
  int whole = 0;
  const int draws = 4000;
  for (int i = 0; i < draws; ++i) {
    const auto b = random_resized_box(H, W, 0.25, 0.5, rng);
    ASSERT_GE(b.y0, 0);
    ASSERT_GE(b.x0, 0);
    ASSERT_LE(b.y0 + b.h, H);
    ASSERT_LE(b.x0 + b.w, W);
    if (b.h == H && b.w == W) {
      ++whole;
      continue;
    }
    const double frac = static_cast<double>(b.h * b.w) / (H * W);
    // w and h are rounded: the area moves by at most (w + h)/2 + 1/4 pixels.
    const double slack = (static_cast<double>(b.h + b.w) / 2 + 0.25) / (H * W);
    EXPECT_GE(frac, 0.25 - slack);
    EXPECT_LE(frac, 0.5 + slack);
    const double ratio = static_cast<double>(b.w) / static_cast<double>(b.h);
    EXPECT_GE(ratio, 0.75 * (1 - 2.0 / b.h) - 1e-9);
    EXPECT_LE(ratio, 4.0 / 3.0 * (1 + 2.0 / b.h) + 1e-9);
    area_sum += frac;
  }
  // Every box of these scales and ratios fits a square image.
  EXPECT_EQ(whole, 0);
  // The mean area fraction of U[0.25, 0.5] is 0.375 (sd of the mean ~0.0011).
  EXPECT_NEAR(area_sum / draws, 0.375, 0.006);
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { random_resized_box(8, 8, 0.0, 1.0, rng); }),
              HasSubstr("0 < min <= max <= 1"));
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { random_resized_box(8, 8, 0.6, 0.5, rng); }),
              HasSubstr("0 < min <= max <= 1"));
}

}  // namespace
}  // namespace dptrain::datasets
