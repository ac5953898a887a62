#include "dptrain/models/fid.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

namespace dptrain::models {
namespace {

std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(t.size(i));
  }
  return s + "]";
}

void check_finite(const at::Tensor& t, const std::string& what) {
  if (!torch::isfinite(t).all().item<bool>()) {
    throw std::invalid_argument(what + " has a non-finite value");
  }
}

at::Tensor symmetrised(const at::Tensor& a) {
  const auto d = a.to(torch::kDouble);
  return 0.5 * (d + d.transpose(0, 1));
}

}  // namespace

GaussianStats feature_statistics(const at::Tensor& features) {
  if (!features.defined() || features.dim() != 2 || features.size(0) < 2) {
    throw std::invalid_argument(
        "feature_statistics: features [N, D] with N >= 2 expected, got " +
        shape_of(features));
  }
  const auto f = features.to(torch::kDouble);
  check_finite(f, "feature_statistics: features");
  GaussianStats s;
  s.mean = f.mean(0);
  const auto centred = f - s.mean;
  s.covariance = centred.transpose(0, 1).matmul(centred) /
                 static_cast<double>(f.size(0) - 1);
  return s;
}

void FeatureStatisticsAccumulator::add(const at::Tensor& features) {
  if (!features.defined() || features.dim() != 2 || features.size(0) < 1 ||
      (count_ > 0 && features.size(1) != mean_.size(0))) {
    throw std::invalid_argument(
        "FeatureStatisticsAccumulator: features [B, D] with B >= 1" +
        std::string(count_ > 0 ? " and D = " + std::to_string(mean_.size(0))
                               : std::string()) +
        " expected, got " + shape_of(features));
  }
  const auto f = features.to(torch::kDouble);
  check_finite(f, "FeatureStatisticsAccumulator: features");
  const int64_t n = f.size(0);
  const auto batch_mean = f.mean(0);
  const auto centred = f - batch_mean;
  const auto batch_scatter = centred.transpose(0, 1).matmul(centred);
  if (count_ == 0) {
    mean_ = batch_mean;
    scatter_ = batch_scatter;
    count_ = n;
    return;
  }
  const double total = static_cast<double>(count_ + n);
  const auto delta = batch_mean.to(mean_.device()) - mean_;
  scatter_ = scatter_ + batch_scatter.to(mean_.device()) +
             torch::outer(delta, delta) *
                 (static_cast<double>(count_) * static_cast<double>(n) / total);
  mean_ = mean_ + delta * (static_cast<double>(n) / total);
  count_ += n;
}

GaussianStats FeatureStatisticsAccumulator::statistics() const {
  if (count_ < 2) {
    throw std::invalid_argument(
        "FeatureStatisticsAccumulator: at least 2 rows needed, got " +
        std::to_string(count_));
  }
  return {mean_.clone(), scatter_ / static_cast<double>(count_ - 1)};
}

at::Tensor symmetric_sqrt(const at::Tensor& a) {
  if (!a.defined() || a.dim() != 2 || a.size(0) != a.size(1)) {
    throw std::invalid_argument(
        "symmetric_sqrt: a square matrix expected, got " + shape_of(a));
  }
  auto [values, vectors] = at::linalg_eigh(symmetrised(a), "L");
  return vectors.matmul(torch::diag(values.clamp_min(0.0).sqrt()))
      .matmul(vectors.transpose(0, 1));
}

double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  const int64_t d =
      a.mean.defined() && a.mean.dim() == 1 ? a.mean.size(0) : int64_t{-1};
  auto ok = [d](const GaussianStats& s) {
    return s.mean.defined() && s.covariance.defined() && s.mean.dim() == 1 &&
           s.mean.size(0) == d && s.covariance.dim() == 2 &&
           s.covariance.size(0) == d && s.covariance.size(1) == d;
  };
  if (d < 0 || !ok(a) || !ok(b)) {
    throw std::invalid_argument(
        "frechet_distance: means [D] and covariances [D, D] of one D "
        "expected, got mean " +
        shape_of(a.mean) + ", covariance " + shape_of(a.covariance) +
        " and mean " + shape_of(b.mean) + ", covariance " +
        shape_of(b.covariance));
  }
  const auto mu1 = a.mean.to(torch::kDouble);
  const auto mu2 = b.mean.to(torch::kDouble).to(mu1.device());
  const auto s1 = symmetrised(a.covariance).to(mu1.device());
  const auto s2 = symmetrised(b.covariance).to(mu1.device());
  check_finite(mu1, "frechet_distance: first mean");
  check_finite(mu2, "frechet_distance: second mean");
  check_finite(s1, "frechet_distance: first covariance");
  check_finite(s2, "frechet_distance: second covariance");
  const auto root1 = symmetric_sqrt(s1);
  const auto m = symmetrised(root1.matmul(s2).matmul(root1));
  const auto mu = at::linalg_eigvalsh(m, "L");
  const double trace_root = mu.clamp_min(0.0).sqrt().sum().item<double>();
  const double mean_term = (mu1 - mu2).pow(2).sum().item<double>();
  const double value = mean_term + s1.trace().item<double>() +
                       s2.trace().item<double>() - 2.0 * trace_root;
  return value > 0 ? value : 0.0;
}

}  // namespace dptrain::models
