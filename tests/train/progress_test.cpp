#include "dptrain/train/progress.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace dptrain::train {
namespace {

TEST(ProgressBar, RendersFractionRateAndEta) {
  // 25 of 100 steps in 5 s: 5 it/s, 75 left -> 15 s.
  const auto text = ProgressBar::render("epoch 1", 25, 100, 5.0, "loss 0.5", 8);
  EXPECT_EQ(text, "epoch 1 [##......] 25/100 5.00 it/s, ETA 0:15  loss 0.5");
}

TEST(ProgressBar, UnknownRateShowsDashes) {
  const auto text = ProgressBar::render("e", 0, 10, 0.0, "", 4);
  EXPECT_EQ(text, "e [....] 0/10 0.00 it/s, ETA --:--");
}

TEST(MetricsLog, AppendsOneLinePerRecord) {
  const auto path =
      (std::filesystem::temp_directory_path() / "dptrain_metrics_test.jsonl")
          .string();
  std::filesystem::remove(path);
  {
    MetricsLog log(path);
    log.write(R"({"step":1})");
    log.write(R"({"step":2})");
  }
  {
    MetricsLog log(
        path);  // reopening appends (a resumed run keeps its history)
    log.write(R"({"step":3})");
  }
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  EXPECT_EQ(lines, (std::vector<std::string>{R"({"step":1})", R"({"step":2})",
                                             R"({"step":3})"}));
  std::filesystem::remove(path);
}

TEST(MetricsLog, UnopenablePathNamesFlagAndPath) {
  try {
    MetricsLog log("/nonexistent-dir/m.jsonl");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "--metrics: cannot open '/nonexistent-dir/m.jsonl'"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace dptrain::train
