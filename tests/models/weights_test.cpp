// Weights in HDF5 and LibTorch files: round trips, by-name error reports,
// all-or-nothing loading. Every file is written by the test itself.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "dptrain/models/small_models.h"
#include "dptrain/models/weights.h"
#include "dptrain/models/wide_resnet.h"
#include "error_helpers.h"

namespace m = dptrain::models;
namespace fs = std::filesystem;

namespace {

using dptrain::test_support::error_of;
using dptrain::test_support::expect_error;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() /
          ("dptrain_models_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

m::WideResNet tiny_wrn(int64_t classes = 4) {
  return m::WideResNet(
      m::WideResNetOptions(10, 1).stem_channels(4).norm_groups(2).num_classes(
          classes));
}

bool same_weights(torch::nn::Module& a, torch::nn::Module& b) {
  auto pa = a.named_parameters();
  auto pb = b.named_parameters();
  if (pa.size() != pb.size()) return false;
  for (const auto& p : pa) {
    if (!torch::equal(p.value(), pb[p.key()])) return false;
  }
  return true;
}

class Weights : public ::testing::TestWithParam<const char*> {
 protected:
  void TearDown() override { std::remove(path_.c_str()); }
  std::string path_ = temp_path(std::string("w") + GetParam());
};

TEST_P(Weights, RoundTripRestoresEveryTensor) {
  torch::manual_seed(1);
  auto a = tiny_wrn();
  auto b = tiny_wrn();
  {
    torch::NoGradGuard g;
    for (auto& p : a->parameters()) p.normal_();  // gains/biases non-trivial
  }
  EXPECT_FALSE(same_weights(*a, *b));
  m::save_weights(*a, path_);
  auto report = m::load_weights(*b, path_);
  EXPECT_TRUE(same_weights(*a, *b));
  EXPECT_EQ(report.loaded.size(), a->named_parameters().size());
  auto x = torch::randn({2, 3, 8, 8});
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
}

TEST_P(Weights, LoadsIntoDoubleModel) {
  auto a = tiny_wrn();
  auto b = tiny_wrn();
  b->to(torch::kDouble);
  m::save_weights(*a, path_);
  m::load_weights(*b, path_);
  EXPECT_EQ(b->stem->weight.scalar_type(), torch::kDouble);
  EXPECT_TRUE(torch::equal(b->stem->weight.to(torch::kFloat), a->stem->weight));
}

TEST_P(Weights, MismatchReportsEveryNameAndLoadsNothing) {
  m::TanhCnn small;  // saved: conv1, conv2, fc1, classifier (10 classes)
  m::save_weights(*small, path_);
  // Target: 3 classes (mis-shaped head) and 3 input channels (mis-shaped
  // conv1).
  m::TanhCnn other(m::TanhCnnOptions().num_classes(3).in_channels(3));
  auto before = other->conv2->weight.clone();
  const auto msg =
      error_of<std::invalid_argument>([&] { m::load_weights(*other, path_); });
  EXPECT_NE(msg.find("nothing was loaded"), std::string::npos) << msg;
  EXPECT_NE(
      msg.find(
          "mis-shaped: conv1.weight (file [16, 1, 8, 8], model [16, 3, 8, 8])"),
      std::string::npos)
      << msg;
  EXPECT_NE(msg.find("classifier.weight (file [10, 32], model [3, 32])"),
            std::string::npos)
      << msg;
  // conv2 matched but must not have been copied (no half-load).
  EXPECT_TRUE(torch::equal(other->conv2->weight, before));

  auto wrn = tiny_wrn();
  const auto msg2 =
      error_of<std::invalid_argument>([&] { m::load_weights(*wrn, path_); });
  EXPECT_NE(msg2.find("missing: stem.weight"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("unexpected: "), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("fc1.weight"), std::string::npos) << msg2;
}

TEST_P(Weights, ExcludeKeepsAFreshHead) {
  auto a = tiny_wrn(10);
  m::save_weights(*a, path_);
  auto b = tiny_wrn(3);
  auto head = b->classifier()->weight.clone();
  auto report = m::load_weights(*b, path_, {"^classifier\\."});
  EXPECT_EQ(report.skipped,
            (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_TRUE(torch::equal(b->classifier()->weight, head));
  EXPECT_TRUE(torch::equal(b->stem->weight, a->stem->weight));
  expect_error<std::invalid_argument>(
      [&] { m::load_weights(*b, path_, {"("}); },
      "exclude pattern '(' is not a valid regex");
}

INSTANTIATE_TEST_SUITE_P(Formats, Weights, ::testing::Values(".h5", ".pt"),
                         [](const auto& param_info) {
                           return std::string(param_info.param).substr(1);
                         });

TEST(WeightsHdf5, AcceptsNestedGroupsAndFloat64) {
  // A converter's layout: groups per path component, float64 data.
  m::TanhCnn net(m::TanhCnnOptions().image_size(16).num_classes(2));
  const auto path = temp_path("nested.h5");
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  std::map<std::string, torch::Tensor> written;
  for (const auto& p : net->named_parameters()) {
    const auto dot = p.key().find('.');
    const std::string group = "/" + p.key().substr(0, dot);
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) <= 0) {
      H5Gclose(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT));
    }
    auto t = torch::randn(p.value().sizes(), torch::kDouble).contiguous();
    written[p.key()] = t;
    std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
    hid_t space = H5Screate_simple(t.dim(), dims.data(), nullptr);
    const std::string name = group + "/" + p.key().substr(dot + 1);
    hid_t dset = H5Dcreate2(file, name.c_str(), H5T_IEEE_F64LE, space,
                            H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
             t.data_ptr<double>());
    H5Dclose(dset);
    H5Sclose(space);
  }
  H5Fclose(file);
  m::load_weights_hdf5(*net, path);
  for (const auto& p : net->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), written[p.key()].to(torch::kFloat)))
        << p.key();
  }
  std::remove(path.c_str());
}

TEST(WeightsHdf5, ScalarParametersAreRankZeroDatasets) {
  const auto path = temp_path("scalar.h5");
  // The NF models' skip gains are scalars: check through a tiny holder.
  torch::nn::Module holder;
  holder.register_parameter("gain", torch::tensor(0.25f));
  m::save_weights_hdf5(holder, path);
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t dset = H5Dopen2(file, "gain", H5P_DEFAULT);
  hid_t space = H5Dget_space(dset);
  EXPECT_EQ(H5Sget_simple_extent_ndims(space), 0);
  H5Sclose(space);
  H5Dclose(dset);
  H5Fclose(file);
  torch::nn::Module other;
  other.register_parameter("gain", torch::tensor(0.0f));
  m::load_weights_hdf5(other, path);
  EXPECT_FLOAT_EQ(other.named_parameters()["gain"].item<float>(), 0.25f);
  std::remove(path.c_str());
}

TEST(WeightsFiles, BadFilesAreNamed) {
  m::TanhCnn net;
  expect_error<std::invalid_argument>(
      [&] { m::load_weights(*net, "/nonexistent/w.h5"); },
      "weights file '/nonexistent/w.h5' cannot be opened for reading");
  const auto junk = temp_path("junk.h5");
  std::ofstream(junk) << "not hdf5";
  expect_error<std::invalid_argument>([&] { m::load_weights(*net, junk); },
                                      "is not an HDF5 file");
  const auto junk_pt = temp_path("junk.pt");
  std::ofstream(junk_pt) << "not a zip";
  expect_error<std::invalid_argument>([&] { m::load_weights(*net, junk_pt); },
                                      "is not a LibTorch archive");
  expect_error<std::invalid_argument>(
      [&] { m::save_weights(*net, "w.bin"); },
      "weights file 'w.bin' must end in .h5, .hdf5");
  expect_error<std::invalid_argument>(
      [&] { m::save_weights(*net, "/nonexistent/dir/w.h5"); },
      "cannot create weights file '/nonexistent/dir/w.h5'");
  std::remove(junk.c_str());
  std::remove(junk_pt.c_str());
}

TEST(WeightsTorch, ReadsTorchSaveOutput) {
  auto a = tiny_wrn();
  auto b = tiny_wrn();
  const auto path = temp_path("ts.pt");
  torch::save(a, path);
  m::load_weights_torch(*b, path);
  EXPECT_TRUE(same_weights(*a, *b));
  std::remove(path.c_str());
}

}  // namespace
