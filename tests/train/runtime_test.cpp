#include "dptrain/train/runtime.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdexcept>
#include <string>
#include <thread>

namespace dptrain::train {
namespace {

// These tests change process-wide thread counts; the fixture puts back what
// the process had, so that the tests after them in the same binary run as
// they would alone (LibTorch 2 + OpenBLAS 2 threads made them 3x slower).
class Runtime : public ::testing::Test {
 protected:
  void TearDown() override {
    at::set_num_threads(torch_threads_);
    if (blas_threads_ > 0) set_blas_num_threads(blas_threads_);
  }
  int torch_threads_ = at::get_num_threads();
  int blas_threads_ = blas_num_threads();
};

TEST_F(Runtime, ZeroThreadsMeansHardwareConcurrency) {
  set_num_threads(0);
  EXPECT_EQ(
      at::get_num_threads(),
      static_cast<int>(std::max(1U, std::thread::hardware_concurrency())));
  set_num_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
}

TEST_F(Runtime, BlasRunsOnTheCallingThreadUnlessTheUserSaidOtherwise) {
  if (!blas_is_openblas()) GTEST_SKIP() << "not OpenBLAS";
  const char* user = std::getenv("OPENBLAS_NUM_THREADS");
  set_num_threads(2);
  EXPECT_EQ(at::get_num_threads(), 2);
  if (user == nullptr) {
    EXPECT_EQ(blas_num_threads(), 1);
  } else {
    EXPECT_EQ(blas_num_threads(), blas_threads_)
        << "OPENBLAS_NUM_THREADS=" << user << " was overridden";
  }
}

#if defined(__GLIBC__)
// After configure_allocator a 16 MiB block comes from the heap (mmap
// threshold 32 MiB), not from a fresh mapping (glibc's default threshold
// starts at 128 KiB); a variable the user set leaves glibc alone.
TEST_F(Runtime, AllocatorKeepsLargeBlocksUnlessTheUserChose) {
  for (const char* name : {"GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_",
                           "MALLOC_TRIM_THRESHOLD_", "DPTRAIN_MALLOC"}) {
    if (std::getenv(name) != nullptr) GTEST_SKIP() << name << " is set";
  }
  ::setenv("MALLOC_TRIM_THRESHOLD_", "1000", 1);
  EXPECT_FALSE(configure_allocator());
  EXPECT_NE(allocator_summary().find("MALLOC_TRIM_THRESHOLD_ is set"),
            std::string::npos)
      << allocator_summary();
  ::unsetenv("MALLOC_TRIM_THRESHOLD_");
  ::setenv("DPTRAIN_MALLOC", "default", 1);
  EXPECT_FALSE(configure_allocator());
  ::unsetenv("DPTRAIN_MALLOC");

  ASSERT_TRUE(configure_allocator());
  EXPECT_EQ(allocator_summary(), "kept (mmap threshold 32 MiB, trim 1 GiB)");
  const auto mapped_before = mallinfo2().hblkhd;
  void* block = std::malloc(size_t{16} << 20);
  ASSERT_NE(block, nullptr);
  const auto mapped_during = mallinfo2().hblkhd;
  std::free(block);
  EXPECT_EQ(mapped_during, mapped_before)
      << "the 16 MiB block was mapped on its own";
  EXPECT_NE(runtime_summary().find("allocator: kept"), std::string::npos);

  // DPTRAIN_MALLOC=heap: a 64 MiB block (above any mmap threshold) comes
  // from the heap too. glibc's default (mapping) is restored after.
  ::setenv("DPTRAIN_MALLOC", "heap", 1);
  ASSERT_TRUE(configure_allocator());
  ::unsetenv("DPTRAIN_MALLOC");
  EXPECT_NE(allocator_summary().find("heap only"), std::string::npos);
  const auto heap_before = mallinfo2().hblkhd;
  void* big = std::malloc(size_t{64} << 20);
  ASSERT_NE(big, nullptr);
  const auto heap_during = mallinfo2().hblkhd;
  std::free(big);
  mallopt(M_MMAP_MAX, 65536);  // glibc's default
  EXPECT_EQ(heap_during, heap_before) << "the 64 MiB block was mapped";
}
#endif

TEST_F(Runtime, RejectsNegativeAndAbsurdThreadCounts) {
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
}

TEST_F(Runtime, ParsesCpuDevice) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  const auto automatic = parse_device("auto");
  EXPECT_EQ(automatic.is_cuda(), torch::cuda::is_available());
}

TEST_F(Runtime, RejectsUnknownDeviceNamingIt) {
  try {
    parse_device("tpu9");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("tpu9"), std::string::npos);
  }
}

TEST_F(Runtime, RejectsCudaWhenAbsent) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "CUDA present";
  EXPECT_THROW(parse_device("cuda:0"), std::invalid_argument);
}

TEST_F(Runtime, FindsLoadedBlas) {
  // Force LibTorch to load its BLAS by doing a matmul.
  auto a = torch::ones({64, 64});
  auto b = torch::mm(a, a);
  EXPECT_DOUBLE_EQ(b[0][0].item<double>(), 64.0);
  EXPECT_FALSE(loaded_blas_library().empty());
}

}  // namespace
}  // namespace dptrain::train
