// safetensors: a hand-made file (bytes from the IEEE formats, not from the
// writer), the writer/reader round trip, every validation error with the file
// and tensor named, and a tiny Griffin checkpoint loaded by published names.
#include "dptrain/models/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "dptrain/models/griffin.h"
#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::error_of;
using dptrain::test_support::expect_error;

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// A file image with `header` as its JSON and `data` after it.
std::string image(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s.push_back(static_cast<char>(x));
  return s;
}

std::string safetensors_temp_path(const std::string& stem) {
  return testing::TempDir() + "/" + stem + "_" +
         std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         ".safetensors";
}

void expect_error(const std::string& header, const std::string& data,
                  const std::string& needle) {
  const auto msg = error_of<std::invalid_argument>(
      [&] { m::parse_safetensors(image(header, data), "ck.st"); });
  EXPECT_NE(msg.find("safetensors 'ck.st'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

}  // namespace

TEST(Safetensors, ReadsHandMadeFileOfEveryDtype) {
  // Little-endian IEEE encodings: F32 1.0 = 00 00 80 3F, 2.0 = 00 00 00 40;
  // F16 1.0 = 00 3C, -2.0 = 00 C0; BF16 1.0 = 80 3F; F64 -2.5 = ... 04 C0.
  const std::string data = bytes({0, 0, 0x80, 0x3F, 0, 0, 0, 0x40}) +
                           bytes({0, 0x3C, 0, 0xC0}) + bytes({0x80, 0x3F}) +
                           bytes({0, 0, 0, 0, 0, 0, 0x04, 0xC0});
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},)"
      R"("h":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},)"
      R"("b":{"dtype":"BF16","shape":[],"data_offsets":[12,14]},)"
      R"("d":{"dtype":"F64","shape":[1],"data_offsets":[14,22]},)"
      R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[22,22]}})";
  const auto t = m::parse_safetensors(image(header, data), "hand");
  ASSERT_EQ(t.size(), 5U);
  EXPECT_EQ(t[0].first, "a");
  EXPECT_EQ(t[0].second.scalar_type(), torch::kFloat);
  EXPECT_EQ(t[0].second.sizes().vec(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(t[0].second[0][0].item<float>(), 1.0F);
  EXPECT_EQ(t[0].second[1][0].item<float>(), 2.0F);
  EXPECT_EQ(t[1].second.scalar_type(), torch::kHalf);
  EXPECT_EQ(t[1].second[0].item<float>(), 1.0F);
  EXPECT_EQ(t[1].second[1].item<float>(), -2.0F);
  EXPECT_EQ(t[2].second.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(t[2].second.dim(), 0);
  EXPECT_EQ(t[2].second.item<float>(), 1.0F);
  EXPECT_EQ(t[3].second.scalar_type(), torch::kDouble);
  EXPECT_EQ(t[3].second[0].item<double>(), -2.5);
  EXPECT_EQ(t[4].second.numel(), 0);
}

TEST(Safetensors, WriterRoundTripsAndAlignsData) {
  torch::manual_seed(0);
  const m::NamedTensors in = {{"x", torch::randn({3, 4})},
                              {"y", torch::randn({5}, torch::kDouble)},
                              {"z", torch::randn({2, 2}).to(torch::kHalf)},
                              {"w", torch::randn({7}).to(torch::kBFloat16)}};
  const auto file = m::serialize_safetensors(in);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i)
    header_len = (header_len << 8) | static_cast<unsigned char>(file[i]);
  EXPECT_EQ((8 + header_len) % 8, 0U);
  const auto out = m::parse_safetensors(file, "mem");
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].first, in[i].first);
    EXPECT_EQ(out[i].second.scalar_type(), in[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(out[i].second, in[i].second)) << in[i].first;
  }
  expect_error<std::invalid_argument>(
      [] {
        m::serialize_safetensors({{"i", torch::zeros({2}, torch::kLong)}});
      },
      "tensor 'i' has dtype Long");
  expect_error<std::invalid_argument>(
      [] {
        m::serialize_safetensors(
            {{"a", torch::zeros({1})}, {"a", torch::zeros({1})}});
      },
      "duplicate tensor name 'a'");
}

TEST(Safetensors, RejectsTruncatedFiles) {
  expect_error<std::invalid_argument>(
      [] { m::parse_safetensors("abc", "f.st"); },
      "safetensors 'f.st': truncated: 3 bytes");
  expect_error<std::invalid_argument>(
      [] { m::parse_safetensors(le64(100) + "{}", "f.st"); },
      "header length is 100 bytes but only 2 follow");
  // The data section is cut short.
  expect_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
               std::string(5, '\0'),
               "tensor 'a': data_offsets [0, 8] run past the data (5 bytes");
  expect_error<std::runtime_error>(
      [] { m::read_safetensors("/nonexistent/w.safetensors"); },
      "cannot open safetensors file '/nonexistent/w.safetensors'");
}

TEST(Safetensors, RejectsBadHeaders) {
  expect_error("{not json", "", "not valid JSON");
  expect_error("[1,2]", "", "not a JSON object");
  expect_error(R"({"a":{"shape":[1],"data_offsets":[0,4]}})",
               std::string(4, '\0'), "tensor 'a' has no dtype");
  expect_error(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})",
               std::string(4, '\0'), "tensor 'a' has no shape");
  expect_error(R"({"a":{"dtype":"F32","shape":[1]}})", std::string(4, '\0'),
               "tensor 'a' has no data_offsets");
  expect_error(R"({"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}})",
               std::string(4, '\0'), "tensor 'a': unsupported dtype I8");
  expect_error(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
               std::string(4, '\0'),
               "tensor 'a': shape must hold non-negative integers");
  expect_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})",
               std::string(4, '\0'),
               "tensor 'a': data_offsets begin 4 > end 0");
  expect_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})",
               std::string(4, '\0'),
               "tensor 'a': data_offsets must be [begin, end]");
  expect_error(R"({"__metadata__":3})", "",
               "__metadata__ is not a JSON object");
}

TEST(Safetensors, RejectsSizeMismatchAndOverlap) {
  expect_error(
      R"({"a":{"dtype":"F64","shape":[2,2],"data_offsets":[0,16]}})",
      std::string(16, '\0'),
      "tensor 'a': shape [2,2] of F64 needs 32 bytes, data_offsets span 16");
  expect_error(
      R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})",
      std::string(16, '\0'), "tensor 'a': shape");
  expect_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
               std::string(12, '\0'),
               "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
}

TEST(Safetensors, LoadsTinyGriffinCheckpointByPublishedNames) {
  torch::manual_seed(3);
  auto src = m::Griffin(m::griffin_config("griffin-tiny"));
  {
    torch::NoGradGuard g;
    for (auto& p : src->parameters()) p.add_(torch::randn_like(p) * 0.1);
  }
  // Stored as BF16 for one tensor and F32 for the rest, as published files mix.
  auto published = m::published_parameters(*src);
  published[0].second = published[0].second.to(torch::kBFloat16);
  const auto path = safetensors_temp_path("griffin_tiny");
  m::write_safetensors(path, published);

  torch::manual_seed(4);
  auto dst = m::Griffin(m::griffin_config("griffin-tiny"));
  m::load_griffin_safetensors(*dst, path);
  const auto loaded = m::published_parameters(*dst);
  ASSERT_EQ(loaded.size(), published.size());
  EXPECT_TRUE(
      torch::equal(loaded[0].second, published[0].second.to(torch::kFloat)));
  // Apart from the BF16-rounded tensor, both models are the same.
  for (size_t i = 1; i < loaded.size(); ++i) {
    EXPECT_TRUE(torch::equal(loaded[i].second, published[i].second))
        << loaded[i].first;
  }

  // A checkpoint of another model (Hawk: no attention block 2): the file
  // and the parameter are named.
  auto hawk = m::Griffin(m::griffin_config("hawk-tiny"));
  const auto hawk_path = safetensors_temp_path("hawk_tiny");
  m::write_safetensors(hawk_path, m::published_parameters(*hawk));
  const auto msg = error_of<std::invalid_argument>(
      [&] { m::load_griffin_safetensors(*dst, hawk_path); });
  EXPECT_NE(msg.find("'" + hawk_path + "'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing parameter 'blocks.2."), std::string::npos) << msg;
  std::remove(path.c_str());
  std::remove(hawk_path.c_str());
}
