// The outputs of a run are checked before its first private step: two
// outputs (or an output and an input) on one file, a missing or unwritable
// directory, an unwritable weights extension; stale temporaries of crashed
// runs are removed; the metrics log never keeps a partial line.
#include "dptrain/train/outputs.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dptrain/train/image_run.h"
#include "dptrain/train/progress.h"
#include "error_helpers.h"
#include "temp_dir_test.h"

namespace dptrain::train {
namespace {

namespace fs = std::filesystem;
using dptrain::test_support::error_of;

class Outputs : public dptrain::test_support::TempDirTest {
 protected:
  TrainConfig config() const {
    TrainConfig c;
    c.noise_multiplier = 1.0;
    c.steps = 1;
    c.dataset =
        path("no_such_data");  // checks must come before the data is read
    return c;
  }
};

TEST_F(Outputs, TwoOutputsOnOneFileAreRefusedNamingBoth) {
  auto c = config();
  c.checkpoint = path("run.ckpt");
  c.summary = path("sub/../run.ckpt");
  fs::create_directories(path("sub"));
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_image_training(c); }),
            "--checkpoint and --summary are the same file '" + c.summary +
                "': one would overwrite the other");
  c.summary = "";
  c.metrics = path("run.ckpt.ledger");
  EXPECT_NE(error_of<std::invalid_argument>([&] { check_outputs(c); })
                .find("--checkpoint (its privacy ledger) and --metrics are the "
                      "same file"),
            std::string::npos);
  c.metrics = "";
  c.save_weights = path("w.h5");
  c.summary = path("w.ema.h5");
  EXPECT_NE(error_of<std::invalid_argument>([&] { check_outputs(c); })
                .find("--summary and --save-weights (the EMA's weights) are "
                      "the same file"),
            std::string::npos);
  // An output over an input.
  std::ofstream(path("data.h5")) << "x";
  c = config();
  c.dataset = path("data.h5");
  c.summary = path("data.h5");
  EXPECT_EQ(error_of<std::invalid_argument>([&] { check_outputs(c); }),
            "--summary '" + c.summary +
                "' is the file of --dataset: it would be overwritten");
  EXPECT_EQ(fs::file_size(path("data.h5")), 1U);
}

TEST_F(Outputs, MissingOrUnwritableDirectoriesFailBeforeTraining) {
  auto c = config();
  c.summary = path("missing/s.json");
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_image_training(c); }),
            "--summary '" + c.summary + "': directory '" + path("missing") +
                "' does not exist");
  c.summary = "";
  c.metrics = dir().string();
  EXPECT_EQ(error_of<std::invalid_argument>([&] { check_outputs(c); }),
            "--metrics '" + dir().string() + "' is a directory, not a file");
  c.metrics = "/proc/dptrain_metrics.jsonl";  // not writable, even as root
  EXPECT_NE(error_of<std::invalid_argument>([&] { check_outputs(c); })
                .find("--metrics '/proc/dptrain_metrics.jsonl': cannot write "
                      "in directory '/proc'"),
            std::string::npos);
  c.metrics = path("m.jsonl");
  check_outputs(c);  // fine, and leaves nothing behind
  EXPECT_TRUE(fs::is_empty(dir()));
}

TEST_F(Outputs, WeightsExtensionIsCheckedFirst) {
  auto c = config();
  c.save_weights = path("w.txt");
  EXPECT_EQ(error_of<std::invalid_argument>([&] { run_image_training(c); }),
            "--save-weights '" + c.save_weights +
                "': the extension must be .h5, .hdf5, .pt or .pth");
  c.task = "lm";
  c.dataset = "text:" + path("t.txt");
  c.save_weights = path("w.h5");
  EXPECT_NE(error_of<std::invalid_argument>([&] {
              check_outputs(c);
            }).find("--task lm writes a .pt file"),
            std::string::npos);
}

TEST_F(Outputs, StaleTemporariesOfDeadProcessesAreRemoved) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);  // now a pid that no longer runs
  const auto file = path("c.ckpt");
  for (const auto pid :
       {static_cast<long>(child), static_cast<long>(::getpid()), 1L}) {
    std::ofstream(file + ".tmp." + std::to_string(pid)) << "partial";
  }
  std::ofstream(file + ".tmp.notapid") << "x";
  EXPECT_EQ(remove_stale_temporaries(file), 1);
  EXPECT_FALSE(fs::exists(file + ".tmp." + std::to_string(child)));
  EXPECT_TRUE(
      fs::exists(file + ".tmp." + std::to_string(::getpid())));  // alive: kept
  EXPECT_TRUE(fs::exists(file + ".tmp.1"));
  EXPECT_TRUE(fs::exists(file + ".tmp.notapid"));
}

std::string read(const std::string& p) {
  std::ifstream in(p);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST_F(Outputs, MetricsLogDropsAPartialLastLine) {
  const auto file = path("m.jsonl");
  std::ofstream(file)
      << "{\"a\":1}\n{\"b\":";  // cut short by a full disk or a crash
  {
    MetricsLog log(file);
    EXPECT_EQ(read(file), "{\"a\":1}\n");
    log.write("{\"c\":3}");
  }
  EXPECT_EQ(read(file), "{\"a\":1}\n{\"c\":3}\n");
  std::ofstream(file) << "no newline at all";
  MetricsLog empty(file);
  EXPECT_EQ(read(file), "");
}

}  // namespace
}  // namespace dptrain::train
