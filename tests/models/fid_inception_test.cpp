// pytorch-fid's InceptionV3 layout: output shapes, module paths, the
// parameter count (derived here from the layer shapes, and tied to
// torchvision's published 27,161,264 for Inception3 with AuxLogits and a
// 1000-way fc), and the weight loader on files the test writes; and the
// small built-in feature CNN.
#include "dptrain/models/fid_inception.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "dptrain/models/feature_cnn.h"
#include "error_helpers.h"
#include "temp_dir_test.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::error_of;

// conv (no bias) + BatchNorm weight and bias: the parameters of a
// BasicConv2d; `channels` sums the BatchNorm widths.
struct Counter {
  int64_t params = 0;
  int64_t channels = 0;
  void conv(int64_t in, int64_t out, int64_t kh, int64_t kw) {
    params += in * out * kh * kw + 2 * out;
    channels += out;
  }
  void a(int64_t in, int64_t pool) {  // FIDInceptionA
    conv(in, 64, 1, 1);
    conv(in, 48, 1, 1);
    conv(48, 64, 5, 5);
    conv(in, 64, 1, 1);
    conv(64, 96, 3, 3);
    conv(96, 96, 3, 3);
    conv(in, pool, 1, 1);
  }
  void b(int64_t in) {  // InceptionB (Mixed_6a)
    conv(in, 384, 3, 3);
    conv(in, 64, 1, 1);
    conv(64, 96, 3, 3);
    conv(96, 96, 3, 3);
  }
  void c(int64_t in, int64_t c7) {  // FIDInceptionC
    conv(in, 192, 1, 1);
    conv(in, c7, 1, 1);
    conv(c7, c7, 1, 7);
    conv(c7, 192, 7, 1);
    conv(in, c7, 1, 1);
    conv(c7, c7, 7, 1);
    conv(c7, c7, 1, 7);
    conv(c7, c7, 7, 1);
    conv(c7, 192, 1, 7);
    conv(in, 192, 1, 1);
  }
  void d(int64_t in) {  // InceptionD (Mixed_7a)
    conv(in, 192, 1, 1);
    conv(192, 320, 3, 3);
    conv(in, 192, 1, 1);
    conv(192, 192, 1, 7);
    conv(192, 192, 7, 1);
    conv(192, 192, 3, 3);
  }
  void e(int64_t in) {  // FIDInceptionE_1 / _2
    conv(in, 320, 1, 1);
    conv(in, 384, 1, 1);
    conv(384, 384, 1, 3);
    conv(384, 384, 3, 1);
    conv(in, 448, 1, 1);
    conv(448, 384, 3, 3);
    conv(384, 384, 1, 3);
    conv(384, 384, 3, 1);
    conv(in, 192, 1, 1);
  }
};

Counter feature_part() {
  Counter k;
  k.conv(3, 32, 3, 3);
  k.conv(32, 32, 3, 3);
  k.conv(32, 64, 3, 3);
  k.conv(64, 80, 1, 1);
  k.conv(80, 192, 3, 3);
  k.a(192, 32);
  k.a(256, 64);
  k.a(288, 64);
  k.b(288);
  k.c(768, 128);
  k.c(768, 160);
  k.c(768, 160);
  k.c(768, 192);
  k.d(768);
  k.e(1280);
  k.e(2048);
  return k;
}

int64_t numel_of(const std::vector<at::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel();
  return n;
}

TEST(FidInception, ParameterCountMatchesTheLayerShapes) {
  m::FidInceptionV3 net;
  const auto k = feature_part();
  EXPECT_EQ(k.params, 21785568);
  // torchvision's Inception3 = this feature part + fc(2048 → 1000) +
  // AuxLogits (BasicConv2d 768→128 1×1, BasicConv2d 128→768 5×5,
  // fc 768 → 1000): its documented num_params is 27,161,264.
  Counter aux;
  aux.conv(768, 128, 1, 1);
  aux.conv(128, 768, 5, 5);
  EXPECT_EQ(k.params + (2048 * 1000 + 1000) + aux.params + (768 * 1000 + 1000),
            27161264);
  const int64_t fc = 2048 * 1008 + 1008;  // the TF graph's 1008-way head
  EXPECT_EQ(m::count_parameters(*net), k.params + fc);
  // Buffers: running mean and variance per BatchNorm channel, and one
  // num_batches_tracked per BatchNorm (94 of them).
  int64_t stats = 0, counters = 0;
  for (const auto& b : net->named_buffers()) {
    if (b.key().size() > 19 &&
        b.key().compare(b.key().size() - 19, 19, "num_batches_tracked") == 0) {
      ++counters;
    } else {
      stats += b.value().numel();
    }
  }
  EXPECT_EQ(k.channels, 17216);
  EXPECT_EQ(stats, 2 * k.channels);
  EXPECT_EQ(counters, 94);
  EXPECT_EQ(numel_of(net->parameters()) - fc, 21785568);
}

TEST(FidInception, ModulePathsAreThoseOfPytorchFidWeights) {
  m::FidInceptionV3 net;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : net->named_parameters()) {
    shapes[p.key()] = p.value().sizes().vec();
  }
  for (const auto& b : net->named_buffers()) {
    shapes[b.key()] = b.value().sizes().vec();
  }
  const std::map<std::string, std::vector<int64_t>> expected = {
      {"Conv2d_1a_3x3.conv.weight", {32, 3, 3, 3}},
      {"Conv2d_1a_3x3.bn.running_mean", {32}},
      {"Conv2d_4a_3x3.conv.weight", {192, 80, 3, 3}},
      {"Mixed_5b.branch5x5_2.conv.weight", {64, 48, 5, 5}},
      {"Mixed_5b.branch_pool.conv.weight", {32, 192, 1, 1}},
      {"Mixed_5d.branch_pool.bn.running_var", {64}},
      {"Mixed_6a.branch3x3.conv.weight", {384, 288, 3, 3}},
      {"Mixed_6b.branch7x7_2.conv.weight", {128, 128, 1, 7}},
      {"Mixed_6e.branch7x7dbl_5.conv.weight", {192, 192, 1, 7}},
      {"Mixed_7a.branch7x7x3_4.conv.weight", {192, 192, 3, 3}},
      {"Mixed_7b.branch3x3_2b.conv.weight", {384, 384, 3, 1}},
      {"Mixed_7c.branch3x3dbl_3a.conv.weight", {384, 384, 1, 3}},
      {"Mixed_7c.branch_pool.bn.bias", {192}},
      {"fc.weight", {1008, 2048}},
      {"fc.bias", {1008}},
  };
  // 94 BasicConv2d × (conv.weight, bn.weight, bn.bias, running_mean,
  // running_var, num_batches_tracked) + fc.weight, fc.bias.
  EXPECT_EQ(shapes.size(), 94U * 6 + 2);
  for (const auto& [name, shape] : expected) {
    ASSERT_EQ(shapes.count(name), 1U) << name;
    EXPECT_EQ(shapes[name], shape) << name;
  }
  const std::regex allowed(
      "^(Conv2d_(1a|2a|2b|3b|4a)_(3x3|1x1)|Mixed_(5[bcd]|6[a-e]|7[abc]))\\..*"
      "(conv\\.weight|bn\\.(weight|bias|running_mean|running_var|"
      "num_batches_tracked))$|^fc\\.(weight|bias)$");
  for (const auto& [name, shape] : shapes) {
    EXPECT_TRUE(std::regex_match(name, allowed)) << name;
  }
}

TEST(FidInception, FeaturesAre2048PerImageResizedTo299) {
  torch::NoGradGuard no_grad;
  m::FidInceptionV3 net;
  net->eval();
  const auto images = torch::rand({1, 3, 32, 32});
  const auto f = net->forward(images);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{1, 2048}));
  EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
  EXPECT_GE(f.min().item<float>(), 0.0F);  // the mean of ReLU outputs
  EXPECT_EQ(net->logits(f).sizes(), (std::vector<int64_t>{1, 1008}));
  // Grey images are repeated to three channels.
  const auto grey = torch::rand({1, 1, 32, 32});
  EXPECT_TRUE(torch::allclose(net->forward(grey),
                              net->forward(grey.repeat({1, 3, 1, 1}))));
}

TEST(FidInception, RejectsBadInputs) {
  m::FidInceptionOptions o;
  o.resize_input = false;
  m::FidInceptionV3 net(o);
  EXPECT_NE(error_of([&] {
              net->forward(torch::zeros({1, 2, 80, 80}));
            }).find("[N, 3, H, W]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              net->forward(torch::zeros({1, 3, 40, 40}));
            }).find("at least 75x75"),
            std::string::npos);
}

class FidInceptionFiles : public dptrain::test_support::TempDirTest,
                          public ::testing::WithParamInterface<std::string> {};

TEST_P(FidInceptionFiles, SavedWeightsLoadToIdenticalFeatures) {
  torch::NoGradGuard no_grad;
  m::FidInceptionOptions o;
  o.resize_input = false;  // 75×75, the smallest input: keeps the test fast
  torch::manual_seed(1);
  m::FidInceptionV3 a(o);
  // Random BatchNorm statistics too, so that loading them matters.
  for (auto& b : a->named_buffers()) {
    if (b.key().find("running_mean") != std::string::npos) {
      b.value().uniform_(-0.1, 0.1);
    } else if (b.key().find("running_var") != std::string::npos) {
      b.value().uniform_(0.5, 2.0);
    }
  }
  a->eval();
  const auto file = path("inception" + GetParam());
  m::save_weights(*a, file);
  torch::manual_seed(2);
  m::FidInceptionV3 b(o);
  b->eval();
  const auto images = torch::rand({1, 3, 75, 75});
  const auto fa = a->forward(images);
  ASSERT_FALSE(torch::allclose(b->forward(images), fa));
  const auto report = m::load_fid_inception_weights(*b, file);
  EXPECT_EQ(report.skipped.size(), 94U);
  for (const auto& name : report.skipped) {
    EXPECT_NE(name.find("num_batches_tracked"), std::string::npos) << name;
  }
  EXPECT_TRUE(torch::equal(b->forward(images), fa));
}

INSTANTIATE_TEST_SUITE_P(Formats, FidInceptionFiles,
                         ::testing::Values(".h5", ".pt"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param == ".h5" ? std::string("Hdf5")
                                                   : std::string("Torch");
                         });

TEST(FeatureCnn, PenultimateFeaturesFeedTheHead) {
  torch::manual_seed(3);
  m::FeatureCnn net(m::FeatureCnnOptions().in_channels(1).width(8));
  const auto images = torch::rand({3, 1, 28, 28});
  const auto f = net->features(images);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(net->feature_dim(), 32);
  const auto logits = net->forward(images);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_TRUE(torch::allclose(logits, net->classifier()->forward(f)));
  // 1·8·9 + 8, 8·16·9 + 16, 16·32·9 + 32, 32·10 + 10.
  EXPECT_EQ(m::count_parameters(*net),
            (72 + 8) + (1152 + 16) + (4608 + 32) + (320 + 10));
  // 32×32 RGB works too; rows are independent.
  m::FeatureCnn rgb(m::FeatureCnnOptions().in_channels(3));
  const auto x = torch::rand({2, 3, 32, 32});
  EXPECT_TRUE(torch::allclose(rgb->features(x)[1],
                              rgb->features(x.slice(0, 1, 2))[0], 1e-5, 1e-6));
  EXPECT_NE(error_of([] {
              m::FeatureCnn(m::FeatureCnnOptions().width(0));
            }).find("width"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              net->features(torch::rand({1, 1, 2, 2}));
            }).find("at least 4x4"),
            std::string::npos);
}

}  // namespace
