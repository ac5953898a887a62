#pragma once
/// The Fréchet distance between two Gaussians, the statistic of FID (Heusel
/// et al. 2017), and the mean and covariance of a feature matrix.
///
///   d²((μ1, Σ1), (μ2, Σ2)) = |μ1 − μ2|² + tr Σ1 + tr Σ2
///                            − 2·tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}
///
/// Computed in float64 with two symmetric eigendecompositions
/// (torch::linalg eigh): Σ1^{1/2} = V·diag(√λ)·Vᵀ, then the trace term is
/// Σ √μ_j over the eigenvalues μ_j of the symmetric PSD matrix
/// M = Σ1^{1/2} Σ2 Σ1^{1/2}. Both matrices are symmetrised ((A + Aᵀ)/2)
/// first. Eigenvalues below 0 (rounding of singular or near-singular
/// covariances, e.g. fewer samples than dimensions) are clamped to 0
/// before the square root; no ε is added to the diagonal. The trace term
/// equals tr (Σ1 Σ2)^{1/2} of pytorch-fid's scipy sqrtm, since Σ1 Σ2 is
/// similar to M; the result is clamped at 0.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace dptrain::models {

/// A Gaussian's mean [D] and covariance [D, D] (float64).
struct GaussianStats {
  at::Tensor mean;
  at::Tensor covariance;
};

/// The sample mean and the unbiased sample covariance (divided by N − 1, as
/// numpy.cov and pytorch-fid) of `features` [N, D], N ≥ 2, in float64 on
/// the features' device. Throws std::invalid_argument for another shape or
/// a non-finite value.
GaussianStats feature_statistics(const at::Tensor& features);

/// Mean and covariance accumulated over batches of features, for sets too
/// large to hold at once: batch statistics merged in float64 by Chan et
/// al.'s pairwise update (means and centred scatter matrices, no raw
/// second moments, so no cancellation). The result equals
/// feature_statistics of all rows concatenated, up to rounding.
class FeatureStatisticsAccumulator {
 public:
  /// Adds features [B, D] (B ≥ 1; D fixed by the first batch). Throws
  /// std::invalid_argument for another shape or a non-finite value.
  void add(const at::Tensor& features);
  /// Rows added so far.
  int64_t count() const { return count_; }
  /// The statistics so far; throws std::invalid_argument with fewer than 2
  /// rows.
  GaussianStats statistics() const;

 private:
  int64_t count_ = 0;
  at::Tensor mean_;     // [D], float64
  at::Tensor scatter_;  // [D, D]: Σ (x − mean)(x − mean)ᵀ
};

/// d² above. Throws std::invalid_argument unless the means are [D], the
/// covariances [D, D] for one D, and all values finite.
double frechet_distance(const GaussianStats& a, const GaussianStats& b);

/// The symmetric PSD square root V·diag(√max(λ, 0))·Vᵀ of (A + Aᵀ)/2 for a
/// square matrix `a` (float64).
at::Tensor symmetric_sqrt(const at::Tensor& a);

}  // namespace dptrain::models
