#include "dptrain/train/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace dptrain::train {
namespace {

namespace fs = std::filesystem;

class CheckpointFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("dptrain_ckpt_" +
         std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    path_ = (dir_ / "run.ckpt").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_sample(double value) {
    torch::serialize::OutputArchive out;
    out.write("weights", torch::full({3, 2}, value, torch::kDouble));
    out.write("step", c10::IValue(static_cast<int64_t>(42)));
    save_checkpoint(out, path_);
  }
  std::string read_bytes() {
    std::ifstream in(path_, std::ios::binary);
    return {std::istreambuf_iterator<char>(in),
            std::istreambuf_iterator<char>()};
  }
  void write_bytes(const std::string& b) {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << b;
  }
  template <typename Fn>
  static std::string error_of(Fn&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(CheckpointFile, RoundTripsTensorsAndValues) {
  write_sample(1.5);
  torch::serialize::InputArchive in;
  load_checkpoint(path_, in);
  torch::Tensor w;
  in.read("weights", w);
  EXPECT_TRUE(torch::equal(w, torch::full({3, 2}, 1.5, torch::kDouble)));
  c10::IValue step;
  ASSERT_TRUE(in.try_read("step", step));
  EXPECT_EQ(step.toInt(), 42);
}

TEST_F(CheckpointFile, OverwriteLeavesNoTemporaryFiles) {
  write_sample(1.0);
  write_sample(2.0);
  int files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir_))
    ++files;
  EXPECT_EQ(files, 1);
  torch::serialize::InputArchive in;
  load_checkpoint(path_, in);
  torch::Tensor w;
  in.read("weights", w);
  EXPECT_DOUBLE_EQ(w[0][0].item<double>(), 2.0);
}

TEST_F(CheckpointFile, RefusesFlippedByte) {
  write_sample(1.0);
  std::string bytes = read_bytes();
  bytes[bytes.size() / 2] ^= 0x5A;
  write_bytes(bytes);
  torch::serialize::InputArchive in;
  const auto msg = error_of([&] { load_checkpoint(path_, in); });
  EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path_), std::string::npos) << msg;
}

TEST_F(CheckpointFile, RefusesTruncatedFile) {
  write_sample(1.0);
  std::string bytes = read_bytes();
  write_bytes(bytes.substr(0, bytes.size() - 10));
  torch::serialize::InputArchive in;
  const auto msg = error_of([&] { load_checkpoint(path_, in); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST_F(CheckpointFile, RefusesForeignFile) {
  write_bytes("this is not a checkpoint at all, just text");
  torch::serialize::InputArchive in;
  const auto msg = error_of([&] { load_checkpoint(path_, in); });
  EXPECT_NE(msg.find("not a dptrain checkpoint"), std::string::npos) << msg;
}

TEST_F(CheckpointFile, RefusesOtherFormatVersion) {
  write_sample(1.0);
  std::string bytes = read_bytes();
  bytes[8] = 9;
  write_bytes(bytes);
  torch::serialize::InputArchive in;
  const auto msg = error_of([&] { load_checkpoint(path_, in); });
  EXPECT_NE(msg.find("format version 9"), std::string::npos) << msg;
}

TEST_F(CheckpointFile, MissingFileNamesPath) {
  torch::serialize::InputArchive in;
  const auto msg =
      error_of([&] { load_checkpoint((dir_ / "absent.ckpt").string(), in); });
  EXPECT_NE(msg.find("absent.ckpt"), std::string::npos) << msg;
}

TEST_F(CheckpointFile, UnwritableDirectoryKeepsOldFile) {
  write_sample(3.0);
  const auto msg = error_of([&] {
    write_file_atomically((dir_ / "no_such_dir" / "x.ckpt").string(), "data");
  });
  EXPECT_NE(msg.find("cannot create"), std::string::npos) << msg;
  torch::serialize::InputArchive in;
  load_checkpoint(path_, in);
  torch::Tensor w;
  in.read("weights", w);
  EXPECT_DOUBLE_EQ(w[0][0].item<double>(), 3.0);
}

TEST(Crc32, MatchesKnownCheckValue) {
  // The standard CRC-32 check value for "123456789" (IEEE 802.3).
  EXPECT_EQ(crc32_of("123456789"), 0xCBF43926U);
}

}  // namespace
}  // namespace dptrain::train
