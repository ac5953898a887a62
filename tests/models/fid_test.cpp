// The Fréchet distance against closed forms (1-D, diagonal, commuting
// covariances) and, for random SPD matrices, against matrix square roots
// computed here another way (coupled Newton–Schulz iteration).
#include "dptrain/models/fid.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>

#include "error_helpers.h"

namespace m = dptrain::models;

namespace {

using dptrain::test_support::error_of;

m::GaussianStats stats(const at::Tensor& mean, const at::Tensor& cov) {
  return {mean.to(torch::kDouble), cov.to(torch::kDouble)};
}

at::Tensor random_spd(int64_t d, uint64_t seed, double ridge) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto a = at::empty({d, d}, torch::kDouble).normal_(0.0, 1.0, gen);
  return a.matmul(a.transpose(0, 1)) / static_cast<double>(d) +
         ridge * torch::eye(d, torch::kDouble);
}

at::Tensor random_orthogonal(int64_t d, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto a = at::empty({d, d}, torch::kDouble).normal_(0.0, 1.0, gen);
  return std::get<0>(at::linalg_qr(a, "reduced"));
}

// Coupled Newton–Schulz (Higham 2008, eq. 6.35) for an SPD matrix, scaled by
// its Frobenius norm so that it converges.
at::Tensor newton_schulz_sqrt(const at::Tensor& a) {
  const int64_t d = a.size(0);
  const double norm = a.norm().item<double>();
  const auto eye = torch::eye(d, torch::kDouble);
  auto y = a / norm;
  auto z = eye.clone();
  for (int i = 0; i < 200; ++i) {
    const auto t = 0.5 * (3.0 * eye - z.matmul(y));
    y = y.matmul(t);
    z = t.matmul(z);
  }
  return y * std::sqrt(norm);
}

TEST(FrechetDistance, OneDimensionalIsTheClosedForm) {
  // (m1 − m2)² + (s1 − s2)² for N(m1, s1²), N(m2, s2²).
  const double m1 = 0.3, m2 = -1.2, s1 = 2.0, s2 = 0.5;
  const double d = m::frechet_distance(
      stats(torch::tensor({m1}, torch::kDouble).view({1}),
            torch::tensor({s1 * s1}, torch::kDouble).view({1, 1})),
      stats(torch::tensor({m2}, torch::kDouble).view({1}),
            torch::tensor({s2 * s2}, torch::kDouble).view({1, 1})));
  EXPECT_NEAR(d, (m1 - m2) * (m1 - m2) + (s1 - s2) * (s1 - s2), 1e-12);
}

TEST(FrechetDistance, DiagonalCovariancesAreTheClosedForm) {
  const auto a = torch::tensor({1.0, 4.0, 0.25, 9.0}, torch::kDouble);
  const auto b = torch::tensor({2.0, 1.0, 0.25, 0.01}, torch::kDouble);
  const auto mu1 = torch::tensor({0.0, 1.0, 2.0, 3.0}, torch::kDouble);
  const auto mu2 = torch::tensor({1.0, 1.0, 0.0, 3.0}, torch::kDouble);
  const double expected = (mu1 - mu2).pow(2).sum().item<double>() +
                          (a.sqrt() - b.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(m::frechet_distance(stats(mu1, torch::diag(a)),
                                  stats(mu2, torch::diag(b))),
              expected, 1e-12);
}

TEST(FrechetDistance, CommutingCovariancesAreTheClosedForm) {
  // Σ1 = Q·diag(a)·Qᵀ, Σ2 = Q·diag(b)·Qᵀ share eigenvectors:
  // d² = Σ (√a_i − √b_i)² for equal means.
  const int64_t d = 16;
  const auto q = random_orthogonal(d, 1);
  auto gen = at::detail::createCPUGenerator(2);
  const auto a = at::empty({d}, torch::kDouble).uniform_(0.01, 5.0, gen);
  const auto b = at::empty({d}, torch::kDouble).uniform_(0.01, 5.0, gen);
  const auto s1 = q.matmul(torch::diag(a)).matmul(q.transpose(0, 1));
  const auto s2 = q.matmul(torch::diag(b)).matmul(q.transpose(0, 1));
  const auto mu = torch::zeros({d}, torch::kDouble);
  EXPECT_NEAR(m::frechet_distance(stats(mu, s1), stats(mu, s2)),
              (a.sqrt() - b.sqrt()).pow(2).sum().item<double>(), 1e-9);
}

TEST(FrechetDistance, IdenticalGaussiansAreAtZeroAndTheDistanceIsSymmetric) {
  const auto s1 = random_spd(32, 3, 0.1);
  const auto s2 = random_spd(32, 4, 0.1);
  auto gen = at::detail::createCPUGenerator(5);
  const auto mu1 = at::empty({32}, torch::kDouble).normal_(0.0, 1.0, gen);
  const auto mu2 = at::empty({32}, torch::kDouble).normal_(0.0, 1.0, gen);
  EXPECT_NEAR(m::frechet_distance(stats(mu1, s1), stats(mu1, s1)), 0.0, 1e-9);
  const auto eye = torch::eye(32, torch::kDouble);
  EXPECT_NEAR(m::frechet_distance(stats(mu1, eye), stats(mu1, eye)), 0.0,
              1e-12);
  const double ab = m::frechet_distance(stats(mu1, s1), stats(mu2, s2));
  const double ba = m::frechet_distance(stats(mu2, s2), stats(mu1, s1));
  EXPECT_GT(ab, 1.0);
  EXPECT_NEAR(ab, ba, 1e-9 * ab);
}

TEST(FrechetDistance, RandomSpdMatchesNewtonSchulzSquareRoots) {
  const int64_t d = 24;
  const auto s1 = random_spd(d, 6, 0.05);
  const auto s2 = random_spd(d, 7, 0.05);
  auto gen = at::detail::createCPUGenerator(8);
  const auto mu1 = at::empty({d}, torch::kDouble).normal_(0.0, 1.0, gen);
  const auto mu2 = at::empty({d}, torch::kDouble).normal_(0.0, 1.0, gen);
  // tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}, both roots by Newton–Schulz.
  const auto r1 = newton_schulz_sqrt(s1);
  ASSERT_LT((r1.matmul(r1) - s1).abs().max().item<double>(), 1e-10);
  const auto inner = r1.matmul(s2).matmul(r1);
  const auto r = newton_schulz_sqrt(0.5 * (inner + inner.transpose(0, 1)));
  const double expected =
      (mu1 - mu2).pow(2).sum().item<double>() + s1.trace().item<double>() +
      s2.trace().item<double>() - 2.0 * r.trace().item<double>();
  EXPECT_NEAR(m::frechet_distance(stats(mu1, s1), stats(mu2, s2)), expected,
              1e-9 * std::abs(expected));
  // The library's root agrees with Newton–Schulz too.
  EXPECT_LT((m::symmetric_sqrt(s1) - r1).abs().max().item<double>(), 1e-10);
}

TEST(FrechetDistance, SingularCovariancesStayFiniteAndNonNegative) {
  // Fewer samples than dimensions: rank-deficient covariances whose
  // eigenvalues round slightly below 0 are clamped.
  torch::manual_seed(9);
  const auto f1 = torch::randn({5, 20}, torch::kDouble);
  const auto f2 = torch::randn({5, 20}, torch::kDouble);
  const double same =
      m::frechet_distance(m::feature_statistics(f1), m::feature_statistics(f1));
  EXPECT_TRUE(std::isfinite(same));
  EXPECT_GE(same, 0.0);
  EXPECT_LT(same, 1e-6);
  const double other =
      m::frechet_distance(m::feature_statistics(f1), m::feature_statistics(f2));
  EXPECT_TRUE(std::isfinite(other));
  EXPECT_GT(other, 1.0);
}

TEST(FeatureStatistics, AreTheSampleMeanAndUnbiasedCovariance) {
  const auto f =
      torch::tensor({{1.0, 2.0}, {3.0, 0.0}, {5.0, 4.0}}, torch::kFloat);
  const auto s = m::feature_statistics(f);
  EXPECT_EQ(s.mean.scalar_type(), torch::kDouble);
  // Means 3, 2; deviations (−2, 0, 2) and (0, −2, 2); divided by N − 1 = 2.
  EXPECT_TRUE(
      torch::allclose(s.mean, torch::tensor({3.0, 2.0}, torch::kDouble)));
  EXPECT_TRUE(torch::allclose(
      s.covariance, torch::tensor({{4.0, 2.0}, {2.0, 4.0}}, torch::kDouble)));
  // Large samples of N(μ, Σ) give back μ and Σ, and d² ≈ 0 to Σ itself.
  const int64_t d = 3;
  const auto sigma = random_spd(d, 10, 0.5);
  const auto root = m::symmetric_sqrt(sigma);
  auto gen = at::detail::createCPUGenerator(11);
  const auto z = at::empty({200000, d}, torch::kDouble).normal_(0.0, 1.0, gen);
  const auto mu = torch::tensor({1.0, -2.0, 0.5}, torch::kDouble);
  const auto samples = z.matmul(root) + mu;
  const auto est = m::feature_statistics(samples);
  EXPECT_LT((est.mean - mu).abs().max().item<double>(), 0.01);
  EXPECT_LT((est.covariance - sigma).abs().max().item<double>(), 0.02);
  EXPECT_LT(m::frechet_distance(est, stats(mu, sigma)), 1e-3);
}

TEST(FeatureStatisticsAccumulator, BatchesGiveTheStatisticsOfAllRows) {
  auto gen = at::detail::createCPUGenerator(12);
  // A large common offset: raw second moments (1e8) would lose ~8 digits.
  const auto f =
      at::empty({37, 6}, torch::kDouble).normal_(0.0, 1.0, gen) + 1e4;
  const auto all = m::feature_statistics(f);
  m::FeatureStatisticsAccumulator acc;
  acc.add(f.slice(0, 0, 1));
  acc.add(f.slice(0, 1, 11));
  acc.add(f.slice(0, 11, 12));
  acc.add(f.slice(0, 12, 37));
  EXPECT_EQ(acc.count(), 37);
  const auto s = acc.statistics();
  EXPECT_LT((s.mean - all.mean).abs().max().item<double>(), 1e-9);
  EXPECT_LT((s.covariance - all.covariance).abs().max().item<double>(), 1e-9);
  EXPECT_GT(s.covariance.diagonal().min().item<double>(), 0.3);
  m::FeatureStatisticsAccumulator one;
  one.add(f.slice(0, 0, 1));
  EXPECT_NE(error_of([&] { one.statistics(); }).find("at least 2 rows"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              one.add(torch::zeros({2, 5}));
            }).find("D = 6"),
            std::string::npos);
}

TEST(FrechetDistance, BadInputsAreNamed) {
  const auto ok = stats(torch::zeros({2}), torch::eye(2));
  EXPECT_NE(error_of([&] {
              m::frechet_distance(ok, stats(torch::zeros({3}), torch::eye(3)));
            }).find("covariances [D, D] of one D"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              m::frechet_distance(stats(torch::zeros({}), torch::eye(2)), ok);
            }).find("means [D]"),
            std::string::npos);
  const auto nan_mean = torch::tensor({std::nan(""), 0.0}, torch::kDouble);
  const auto nan_message = error_of(
      [&] { m::frechet_distance(ok, stats(nan_mean, torch::eye(2))); });
  EXPECT_NE(nan_message.find("second mean has a non-finite value"),
            std::string::npos)
      << nan_message;
  EXPECT_NE(error_of([&] {
              m::feature_statistics(torch::zeros({1, 4}));
            }).find("N >= 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              m::feature_statistics(torch::zeros({4}));
            }).find("[N, D]"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              m::symmetric_sqrt(torch::zeros({2, 3}));
            }).find("square"),
            std::string::npos);
}

}  // namespace
