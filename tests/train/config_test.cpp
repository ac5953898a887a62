#include "dptrain/train/config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>
#include <variant>

#include "error_helpers.h"

namespace dptrain::train {
namespace {

namespace fs = std::filesystem;
using test_support::error_of;

TrainConfig valid_config() {
  TrainConfig c;
  c.target_epsilon = 3.0;
  c.epochs = 2;
  return c;
}

TEST(TrainConfig, DefaultsWithBudgetAreValid) {
  EXPECT_NO_THROW(valid_config().validate());
}

struct BadCase {
  const char* name;
  std::function<void(TrainConfig&)> mutate;
  const char* expected;
};

TEST(TrainConfig, EachBadFieldNamesItsFlagAndValue) {
  const std::vector<BadCase> cases = {
      {"negative epsilon", [](TrainConfig& c) { c.target_epsilon = -1; },
       "--target-epsilon must be > 0"},
      {"nan epsilon", [](TrainConfig& c) { c.target_epsilon = std::nan(""); },
       "--target-epsilon"},
      {"delta one", [](TrainConfig& c) { c.delta = 1.0; },
       "--delta must be in (0, 1), got 1"},
      {"delta zero", [](TrainConfig& c) { c.delta = 0.0; },
       "--delta must be in (0, 1), got 0"},
      {"clip zero", [](TrainConfig& c) { c.max_grad_norm = 0; },
       "--max-grad-norm must be > 0"},
      {"batch zero", [](TrainConfig& c) { c.batch_size = 0; },
       "--batch-size must be > 0, got 0"},
      {"physical", [](TrainConfig& c) { c.max_physical_batch_size = -3; },
       "--max-physical-batch-size must be > 0, got -3"},
      {"both budgets", [](TrainConfig& c) { c.noise_multiplier = 1.0; },
       "only one of --target-epsilon and --noise-multiplier"},
      {"no budget", [](TrainConfig& c) { c.target_epsilon = 0; }, "both are 0"},
      {"huge sigma",
       [](TrainConfig& c) {
         c.target_epsilon = 0;
         c.noise_multiplier = 1e300;
       },
       "--noise-multiplier must be at most 1e+06, got 1e+300"},
      {"huge clip", [](TrainConfig& c) { c.max_grad_norm = 1e300; },
       "--max-grad-norm must be at most 1e+06, got 1e+300"},
      {"huge steps",
       [](TrainConfig& c) {
         c.epochs = 0;
         c.steps = 4000000000000000000;
       },
       "--steps must be in [0, 1000000000], got 4000000000000000000"},
      {"both lengths", [](TrainConfig& c) { c.steps = 10; },
       "exactly one of --epochs and --steps"},
      {"no length", [](TrainConfig& c) { c.epochs = 0; },
       "exactly one of --epochs and --steps"},
      {"optimizer", [](TrainConfig& c) { c.optimizer = "lion"; },
       "--optimizer must be one of sgd, adam, adamw, got 'lion'"},
      {"accountant", [](TrainConfig& c) { c.accountant = "gdp"; },
       "--accountant must be one of"},
      {"sampler", [](TrainConfig& c) { c.sampler = "fixed"; },
       "--sampler must be one of"},
      {"momentum", [](TrainConfig& c) { c.momentum = 1.5; },
       "--momentum must be in [0, 1)"},
      {"ema", [](TrainConfig& c) { c.ema_decay = 1.0; },
       "--ema-decay must be in [0, 1)"},
      {"augmult", [](TrainConfig& c) { c.augmult = -1; },
       "--augmult must be >= 0, got -1"},
      {"lr", [](TrainConfig& c) { c.lr = 0; }, "--lr must be > 0, got 0"},
      {"resume", [](TrainConfig& c) { c.resume = true; },
       "--resume needs --checkpoint"},
      {"fp16", [](TrainConfig& c) { c.mixed_precision = "fp16"; },
       "--mixed-precision must be one of no, bf16, got 'fp16'"},
      {"bf16 two passes",
       [](TrainConfig& c) {
         c.mixed_precision = "bf16";
         c.backward_passes = 2;
       },
       "--mixed-precision bf16 needs --backward-passes 1"},
  };
  for (const auto& bad : cases) {
    TrainConfig c = valid_config();
    bad.mutate(c);
    const auto msg = error_of<std::invalid_argument>([&] { c.validate(); });
    EXPECT_NE(msg.find(bad.expected), std::string::npos)
        << bad.name << ": " << msg;
  }
}

class TomlConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ =
        (fs::temp_directory_path() /
         ("dptrain_cfg_" +
          std::string(
              ::testing::UnitTest::GetInstance()->current_test_info()->name()) +
          ".toml"))
            .string();
  }
  void TearDown() override { fs::remove(path_); }
  void write(const std::string& text) { std::ofstream(path_) << text; }
  std::string path_;
};

TEST_F(TomlConfig, ReadsKebabAndSnakeKeys) {
  write(
      "target-epsilon = 1.5\nbatch_size = 4096\naugmult = 16\nseed = 7\n"
      "normalize-clipped = true\noptimizer = \"adam\"\nlr = 2\n");
  TrainConfig c;
  apply_toml_file(path_, c);
  EXPECT_DOUBLE_EQ(c.target_epsilon, 1.5);
  EXPECT_EQ(c.batch_size, 4096);
  EXPECT_EQ(c.augmult, 16);
  ASSERT_TRUE(c.seed.has_value());
  EXPECT_EQ(*c.seed, 7U);
  EXPECT_TRUE(c.normalize_clipped);
  EXPECT_EQ(c.optimizer, "adam");
  EXPECT_DOUBLE_EQ(c.lr,
                   2.0);  // an integer is accepted where a number is expected
  EXPECT_EQ(c.model, "cnn");  // untouched keys keep their value
}

TEST_F(TomlConfig, UnknownKeyNamesFileAndKey) {
  write("target-epsilonn = 3\n");
  TrainConfig c;
  const auto msg =
      error_of<std::invalid_argument>([&] { apply_toml_file(path_, c); });
  EXPECT_NE(msg.find(path_), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key 'target-epsilonn'"), std::string::npos)
      << msg;
}

TEST_F(TomlConfig, WrongTypeNamesKey) {
  write("batch-size = \"big\"\n");
  TrainConfig c;
  const auto msg =
      error_of<std::invalid_argument>([&] { apply_toml_file(path_, c); });
  EXPECT_NE(msg.find("key 'batch-size': expected an integer"),
            std::string::npos)
      << msg;
}

TEST_F(TomlConfig, SyntaxErrorNamesFile) {
  write("target-epsilon = = 3\n");
  TrainConfig c;
  const auto msg =
      error_of<std::invalid_argument>([&] { apply_toml_file(path_, c); });
  EXPECT_NE(msg.find(path_), std::string::npos) << msg;
}

TEST_F(TomlConfig, MissingFileNamesFile) {
  TrainConfig c;
  const auto msg = error_of<std::invalid_argument>(
      [&] { apply_toml_file("/nonexistent/run.toml", c); });
  EXPECT_NE(msg.find("/nonexistent/run.toml"), std::string::npos) << msg;
}

TEST_F(TomlConfig, MissingFileSaysSo) {
  TrainConfig c;
  EXPECT_EQ(error_of<std::invalid_argument>(
                [&] { apply_toml_file("/nonexistent/run.toml", c); }),
            "config '/nonexistent/run.toml': no such file");
}

// toml::parse once sized its buffer by a folder's "length": std::bad_alloc.
TEST_F(TomlConfig, FolderIsNotARegularFile) {
  const std::string dir = fs::temp_directory_path().string();
  TrainConfig c;
  EXPECT_EQ(error_of<std::invalid_argument>([&] { apply_toml_file(dir, c); }),
            "config '" + dir + "': not a regular file (a folder)");
}

TEST(TrainConfig, JsonHasTheFieldsName) {
  auto c = valid_config();
  c.seed = 3;
  const auto j = nlohmann::json::parse(to_json(c));
  EXPECT_DOUBLE_EQ(j.at("target_epsilon").get<double>(), 3.0);
  EXPECT_EQ(j.at("seed").get<int>(), 3);
  EXPECT_EQ(j.at("accountant").get<std::string>(), "rdp");
}

TEST(TrainConfig, EveryKeyIsKebabCase) {
  for (const auto& k : config_keys()) {
    EXPECT_EQ(k.find('_'), std::string::npos) << k;
  }
}

// One table drives TOML and JSON: every field read from a file shows up,
// changed, in the JSON echo under its snake_case name (none is missing).
TEST_F(TomlConfig, EveryFieldRoundTripsFromTomlToJson) {
  const auto before = nlohmann::json::parse(to_json(TrainConfig{}));
  std::size_t checked = 0;
  for (const auto& field : config_fields()) {
    std::string value;
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(TrainConfig{}.*member)>;
          if constexpr (std::is_same_v<T, std::string>) value = "\"x-value\"";
          if constexpr (std::is_same_v<T, double>) value = "0.125";
          if constexpr (std::is_same_v<T, std::int64_t>) value = "77";
          if constexpr (std::is_same_v<T, bool>) value = "true";
          if constexpr (std::is_same_v<T, std::vector<std::int64_t>>)
            value = "[4, 9]";
          if constexpr (std::is_same_v<T, std::optional<std::uint64_t>>)
            value = "12";
        },
        field.member);
    write(std::string(field.key) + " = " + value + "\n");
    TrainConfig c;
    apply_toml_file(path_, c);
    std::string json_key = field.key;
    std::replace(json_key.begin(), json_key.end(), '-', '_');
    const auto after = nlohmann::json::parse(to_json(c));
    ASSERT_TRUE(after.contains(json_key)) << json_key;
    EXPECT_NE(after.at(json_key), before.at(json_key)) << field.key;
    EXPECT_EQ(after.size(), before.size());
    ++checked;
  }
  EXPECT_EQ(checked, config_keys().size());
  EXPECT_GE(checked, 44U);
}

// configs/*.toml (the papers' runs and the recipes) are valid train configs;
// the data sets they name are not on this machine, so only the settings are
// checked.
TEST(ShippedConfigs, EveryTopLevelConfigFileIsValid) {
  const char* root = std::getenv("DPTRAIN_SOURCE_DIR");
  if (root == nullptr) GTEST_SKIP() << "DPTRAIN_SOURCE_DIR is not set";
  int files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(root) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    SCOPED_TRACE(entry.path().string());
    TrainConfig c;
    apply_toml_file(entry.path().string(), c);
    EXPECT_NO_THROW(c.validate());
    EXPECT_EQ(c.task, "classify");
    ++files;
  }
  EXPECT_GE(files, 9);
}

}  // namespace
}  // namespace dptrain::train
