#include "dptrain/datasets/idx_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "dataset_files.h"
#include "dptrain/datasets/errors.h"

namespace dptrain::datasets {
namespace {

using ::testing::HasSubstr;
using testing::idx_bytes;

// Runs parse_idx and returns the error message ("" when it succeeded).
std::string parse_error(const testing::Bytes& b) {
  try {
    parse_idx(b.data(), b.size(), "buf.idx");
  } catch (const DatasetError& e) {
    EXPECT_EQ(e.file(), "buf.idx");
    return e.what();
  }
  return "";
}

TEST(IdxParser, ReadsHeaderAndPointsAtPayload) {
  const auto b = idx_bytes(0x08, {2, 3, 1}, {1, 2, 3, 4, 5, 6});
  const IdxArray a = parse_idx(b.data(), b.size(), "buf.idx");
  EXPECT_EQ(a.type, IdxType::kUint8);
  EXPECT_EQ(a.dims, (std::vector<std::uint64_t>{2, 3, 1}));
  EXPECT_EQ(a.num_elements(), 6u);
  ASSERT_EQ(a.data_bytes, 6u);
  EXPECT_EQ(a.data, b.data() + 16);
  EXPECT_EQ(a.data[5], 6);
}

TEST(IdxParser, SizesMultiByteTypes) {
  const auto b = idx_bytes(0x0C, {2}, {0, 0, 0, 1, 0, 0, 0, 2});
  const IdxArray a = parse_idx(b.data(), b.size(), "buf.idx");
  EXPECT_EQ(a.type, IdxType::kInt32);
  EXPECT_EQ(a.data_bytes, 8u);
  EXPECT_EQ(idx_element_size(IdxType::kFloat64), 8u);
  EXPECT_EQ(idx_element_size(IdxType::kInt16), 2u);
}

TEST(IdxParser, AcceptsEmptyArray) {
  const auto b = idx_bytes(0x08, {0, 28, 28}, {});
  EXPECT_EQ(parse_idx(b.data(), b.size(), "buf.idx").data_bytes, 0u);
  // A zero anywhere makes the product zero, however large the other dims.
  const auto z = idx_bytes(0x08, {1u << 16, 1u << 16, 0, 1u << 16}, {});
  EXPECT_EQ(parse_idx(z.data(), z.size(), "buf.idx").data_bytes, 0u);
}

TEST(IdxParser, RejectsShortHeader) {
  EXPECT_THAT(parse_error({0, 0}), HasSubstr("buf.idx: truncated IDX header"));
  EXPECT_THAT(parse_error({}), HasSubstr("truncated IDX header: 0 bytes"));
  // Rank 3 needs 16 header bytes; give 10.
  EXPECT_THAT(parse_error({0, 0, 8, 3, 0, 0, 0, 1, 0, 0}),
              HasSubstr("the header of a 3-D array needs 16"));
}

TEST(IdxParser, RejectsWrongMagic) {
  auto b = idx_bytes(0x08, {1}, {0});
  b[0] = 0x1f;  // e.g. a gzip stream handed over undecompressed
  EXPECT_THAT(parse_error(b), HasSubstr("buf.idx: wrong magic 0x1f000801"));
  EXPECT_THAT(parse_error(idx_bytes(0x07, {1}, {0})),
              HasSubstr("wrong magic 0x00000701"));
  EXPECT_THAT(parse_error(idx_bytes(0x08, {}, {})),
              HasSubstr("wrong magic 0x00000800"));
}

TEST(IdxParser, RejectsTruncatedData) {
  EXPECT_THAT(parse_error(idx_bytes(0x08, {2, 2}, {1, 2, 3})),
              HasSubstr("buf.idx: truncated data: header dimensions [2, 2] "
                        "need 4 bytes of data, the file has 3"));
  EXPECT_THAT(parse_error(idx_bytes(0x0D, {2}, {1, 2, 3, 4})),
              HasSubstr("need 8 bytes"));
}

TEST(IdxParser, RejectsTrailingData) {
  EXPECT_THAT(parse_error(idx_bytes(0x08, {2}, {1, 2, 3})),
              HasSubstr("trailing data: header dimensions [2] need 2 bytes"));
}

TEST(IdxParser, RejectsDimensionsWhoseProductOverflows) {
  // 2^32-1 in each of 4 dims overflows 64 bits; must not wrap to a small size.
  const std::uint32_t big = 0xFFFFFFFFu;
  EXPECT_THAT(parse_error(idx_bytes(0x0E, {big, big, big, big}, {1})),
              HasSubstr("describe more than 68719476736 bytes"));
  // 2^48 bytes: over the limit though it fits in 64 bits.
  EXPECT_THAT(parse_error(idx_bytes(0x08, {1u << 16, 1u << 16, 1u << 16}, {})),
              HasSubstr("describe more than"));
}

}  // namespace
}  // namespace dptrain::datasets
