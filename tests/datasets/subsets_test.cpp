#include "dptrain/datasets/subsets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "test_util.h"

namespace dptrain::datasets {
namespace {

using testing::error_of;
using ::testing::HasSubstr;

// n one-pixel images whose value is the example index (mod 256); label i % 10.
ImageDataset indexed(std::int64_t n) {
  auto x = torch::arange(n, torch::kLong)
               .remainder(256)
               .to(torch::kByte)
               .view({n, 1, 1, 1});
  auto y = torch::arange(n, torch::kLong).remainder(10);
  return ImageDataset(x, y, 10, {}, "indexed");
}

std::vector<std::int64_t> ids(const ImageDataset& d) {
  auto v = d.images().view({-1}).to(torch::kLong);
  return std::vector<std::int64_t>(v.data_ptr<int64_t>(),
                                   v.data_ptr<int64_t>() + v.numel());
}

TEST(SeededPermutation, IsAPermutationFixedBySeed) {
  const auto p = seeded_permutation(100, 7);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> iota(100);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  EXPECT_EQ(seeded_permutation(100, 7), p);
  EXPECT_NE(seeded_permutation(100, 8), p);
  EXPECT_NE(p, iota);
  EXPECT_TRUE(seeded_permutation(0, 1).empty());
}

TEST(SeededPermutation, PlacesEachElementUniformly) {
  // Position of element 0 over 4000 seeds, n = 4: each position has
  // probability 1/4; chi-square with 3 dof, 99.9% quantile 16.27.
  std::vector<int> hits(4, 0);
  for (std::uint64_t s = 0; s < 4000; ++s) {
    const auto p = seeded_permutation(4, s);
    ++hits[static_cast<size_t>(std::find(p.begin(), p.end(), 0) - p.begin())];
  }
  double chi2 = 0;
  for (int h : hits) chi2 += (h - 1000.0) * (h - 1000.0) / 1000.0;
  EXPECT_LT(chi2, 16.27);
}

TEST(SplitTrainValidation, PartitionsDeterministically) {
  const auto d = indexed(200);
  const auto [train, val] = split_train_validation(d, 50, 42);
  EXPECT_EQ(train.size(), 150);
  EXPECT_EQ(val.size(), 50);
  EXPECT_EQ(train.num_classes(), 10);
  auto a = ids(train), b = ids(val);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  std::set<std::int64_t> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 200u);  // disjoint and covering
  // Labels travel with their images.
  for (std::int64_t i = 0; i < val.size(); ++i) {
    EXPECT_EQ(val.get(i).label, b[static_cast<size_t>(i)] % 10);
  }
  EXPECT_EQ(ids(split_train_validation(d, 50, 42).second), b);
  EXPECT_NE(ids(split_train_validation(d, 50, 43).second), b);
  EXPECT_EQ(split_train_validation(d, 0, 1).first.size(), 200);
  EXPECT_EQ(split_train_validation(d, 200, 1).second.size(), 200);
}

TEST(SplitTrainValidation, RejectsBadSize) {
  const auto d = indexed(10);
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { split_train_validation(d, 11, 0); }),
              HasSubstr("validation_size must be in [0, 10], got 11"));
  EXPECT_THAT(error_of<std::invalid_argument>(
                  [&] { split_train_validation(d, -1, 0); }),
              HasSubstr("got -1"));
}

TEST(SubsetByClasses, KeepsChosenClassesAndRelabels) {
  const auto d = indexed(30);
  const auto upper = subset_by_classes(d, {5, 6, 7, 8, 9});
  EXPECT_EQ(upper.size(), 15);
  EXPECT_EQ(upper.num_classes(), 5);
  EXPECT_EQ(upper.class_counts(), std::vector<std::int64_t>(5, 3));
  const auto v = ids(upper);
  for (std::int64_t i = 0; i < upper.size(); ++i) {
    EXPECT_EQ(upper.get(i).label, v[static_cast<size_t>(i)] % 10 - 5);
  }
  const auto kept = subset_by_classes(d, {7, 2}, /*relabel=*/false);
  EXPECT_EQ(kept.num_classes(), 10);
  EXPECT_EQ(ids(kept), (std::vector<std::int64_t>{2, 7, 12, 17, 22, 27}));
  const auto swapped = subset_by_classes(d, {7, 2});
  EXPECT_EQ(swapped.get(0).label, 1);  // class 2 is listed second
  EXPECT_EQ(swapped.get(1).label, 0);
}

TEST(SubsetByClasses, RejectsBadClassLists) {
  const auto d = indexed(10);
  EXPECT_THAT(
      error_of<std::invalid_argument>([&] { subset_by_classes(d, {}); }),
      HasSubstr("classes must not be empty"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] {
                subset_by_classes(d, {1, 10});
              }),
              HasSubstr("class 10 is outside [0, 10)"));
  EXPECT_THAT(error_of<std::invalid_argument>([&] {
                subset_by_classes(d, {3, 3});
              }),
              HasSubstr("class 3 is listed twice"));
}

}  // namespace
}  // namespace dptrain::datasets
