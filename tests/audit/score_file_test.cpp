#include "dptrain/audit/score_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "error_helpers.h"
#include "temp_dir_test.h"

namespace dptrain::audit {
namespace {

using dptrain::test_support::expect_error;

class ScoreFile : public dptrain::test_support::TempDirTest {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    const std::string p = path(name);
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
};

TEST_F(ScoreFile, ReadsOneNumberALine) {
  const auto p = write("scores.txt", "1.5\n-2\n  3e-3 \r\n0\n7");
  EXPECT_EQ(read_scores(p), (std::vector<double>{1.5, -2.0, 3e-3, 0.0, 7.0}));
}

TEST_F(ScoreFile, ReadsInclusionCoins) {
  const auto p = write("in.txt", "1\n0\r\n 1\n");
  EXPECT_EQ(read_inclusion(p), (std::vector<bool>{true, false, true}));
}

TEST_F(ScoreFile, BadLinesNameTheFileAndLine) {
  const auto bad = write("scores.txt", "1\n2\nabc\n");
  expect_error([&] { read_scores(bad); },
               bad + ":3: expected a finite number, got \"abc\"");
  const auto nan = write("nan.txt", "1\nnan\n");
  expect_error([&] { read_scores(nan); },
               nan + ":2: expected a finite number, got \"nan\"");
  const auto two = write("two.txt", "1 2\n");
  expect_error([&] { read_scores(two); },
               two + ":1: expected a finite number, got \"1 2\"");
  const auto blank = write("blank.txt", "1\n\n2\n");
  expect_error([&] { read_scores(blank); },
               blank + ":2: expected a finite number, got \"\"");
  const auto coin = write("coins.txt", "1\n0\n2\n");
  expect_error([&] { read_inclusion(coin); },
               coin + ":3: expected 0 or 1, got \"2\"");
}

TEST_F(ScoreFile, MissingAndEmptyFilesAreNamed) {
  const auto missing = path("missing.txt");
  expect_error([&] { read_scores(missing); },
               "cannot open scores file \"" + missing + "\"");
  expect_error([&] { read_inclusion(missing); },
               "cannot open inclusion file \"" + missing + "\"");
  const auto empty = write("empty.txt", "");
  expect_error([&] { read_scores(empty); },
               "scores file \"" + empty + "\" has no lines");
}

}  // namespace
}  // namespace dptrain::audit
