#pragma once

// A test fixture with a fresh directory per test (named after the suite and
// the test, so parallel ctest runs do not collide), removed afterwards.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace dptrain::test_support {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("dptrain_" + std::string(info->test_suite_name()) + "_" +
            info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  /// `name` inside the test's directory.
  std::string path(const std::string& name) const {
    return (dir_ / name).string();
  }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace dptrain::test_support
