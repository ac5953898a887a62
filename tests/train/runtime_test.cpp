#include "dptrain/train/runtime.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <thread>

namespace dptrain::train {
namespace {

TEST(Runtime, ZeroThreadsMeansHardwareConcurrency) {
  set_num_threads(0);
  EXPECT_EQ(
      at::get_num_threads(),
      static_cast<int>(std::max(1U, std::thread::hardware_concurrency())));
  set_num_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  // The BLAS's own pool follows (OpenBLAS; 0 means another BLAS).
  if (blas_is_openblas()) {
    EXPECT_EQ(blas_num_threads(), 1);
  }
  set_num_threads(2);
  if (blas_is_openblas()) {
    EXPECT_EQ(blas_num_threads(), 2);
  }
}

TEST(Runtime, RejectsNegativeAndAbsurdThreadCounts) {
  const int most =
      4 * static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  const std::string expected =
      "--threads must be in [0, " + std::to_string(most) + "]";
  for (const int bad : {-2, most + 1, 100000}) {
    try {
      set_num_threads(bad);
      FAIL() << "expected std::invalid_argument for " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("got " + std::to_string(bad)),
                std::string::npos);
    }
  }
  set_num_threads(most);  // the bound itself is allowed
  EXPECT_EQ(at::get_num_threads(), most);
  set_num_threads(0);
}

TEST(Runtime, ParsesCpuDevice) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  const auto automatic = parse_device("auto");
  EXPECT_EQ(automatic.is_cuda(), torch::cuda::is_available());
}

TEST(Runtime, RejectsUnknownDeviceNamingIt) {
  try {
    parse_device("tpu9");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("tpu9"), std::string::npos);
  }
}

TEST(Runtime, RejectsCudaWhenAbsent) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "CUDA present";
  EXPECT_THROW(parse_device("cuda:0"), std::invalid_argument);
}

TEST(Runtime, FindsLoadedBlas) {
  // Force LibTorch to load its BLAS by doing a matmul.
  auto a = torch::ones({64, 64});
  auto b = torch::mm(a, a);
  EXPECT_DOUBLE_EQ(b[0][0].item<double>(), 64.0);
  EXPECT_FALSE(loaded_blas_library().empty());
}

}  // namespace
}  // namespace dptrain::train
