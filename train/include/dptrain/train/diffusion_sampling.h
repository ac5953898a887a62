// Synthetic data from a trained diffusion UNet (`dptrain diffusion sample`):
// balanced labels, EDM's Heun or stochastic sampler or DDIM with
// classifier-free guidance, batched and seeded on any device, written as an
// HDF5 data set that `dptrain train
// --dataset S.h5` reads, and a PNG grid with one row per class. Sampling is
// post-processing of the released weights: the samples carry the
// fine-tuning run's (ε, δ), which the output records when given.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dptrain/models/diffusion.h"
#include "dptrain/models/unet.h"

namespace dptrain::train {

/// `n` labels over `classes` (class ids 0..k-1 of the model), balanced: each
/// class gets floor(n/k) and the first n mod k classes one more, in class
/// order (then shuffled by nothing: sampling noise is per row).
std::vector<std::int64_t> balanced_labels(
    std::int64_t n, const std::vector<std::int64_t>& classes);

/// Images of `labels` (int64 [N]) from `net` on its device: `sampler` with
/// `steps` levels and guidance weight `guidance`, in batches of
/// `batch_size` rows; each row's initial noise comes from a CPU generator
/// seeded by (`seed`, row), so the images of the deterministic samplers
/// depend on the seed and not on the device or batch size. Returns uint8 [N, C,
/// H, W] on the CPU.
struct SampleOptions {
  /// "heun" (EDM's deterministic 2nd-order sampler), "churn" (EDM's
  /// stochastic sampler, Algorithm 2, with S_tmin 0.05, S_tmax 50 and
  /// S_noise 1.003 as EDM's ImageNet runs) or "ddim" (deterministic, first
  /// order: one network call per step). With "churn" the fresh noise is drawn
  /// per batch, so its images depend on batch_size as well as on the seed.
  std::string sampler = "heun";
  double churn = 40.0;           ///< S_churn of "churn" (>= 0)
  std::int64_t steps = 18;       ///< Heun steps (EDM's default for CIFAR-10)
  double guidance = 0.0;         ///< w of classifier-free guidance; >= 0
  std::int64_t batch_size = 64;  ///< rows per sampler call
  std::uint64_t seed = 0;
  double sigma_data = 0.5;  ///< as the model was trained
  /// As the model was trained (--diffusion-objective of the run).
  models::Parameterization parameterization = models::Parameterization::kEdm;
  /// Throws std::invalid_argument naming the flag (--sampler, --churn,
  /// --steps, --guidance, --batch-size).
  void validate() const;
};
at::Tensor sample_images(models::UNet& net, const at::Tensor& labels,
                         const SampleOptions& options);

/// What `dptrain diffusion sample` is asked for.
struct SampleRun {
  std::string weights;  ///< --weights: a dptrain weights file (.h5/.pt)
  std::string model;    ///< --model: a diffusion model name
  /// --num-classes: the classes the model was trained with; 0 = from
  /// --privacy-summary's "num_classes" (or 10 without one).
  std::int64_t num_classes = 0;
  std::int64_t channels = 0;          ///< --channels; 0 = the model config's
  std::int64_t num_samples = 0;       ///< --num-samples (> 0)
  std::int64_t test_samples = 0;      ///< --test-samples: a "test" split too
  std::vector<std::int64_t> classes;  ///< --classes; empty = all
  std::string out;                    ///< --out S.h5
  std::string grid;                   ///< --grid G.png (optional)
  std::int64_t grid_columns = 10;     ///< --grid-columns
  std::string privacy_summary;        ///< --privacy-summary F.json (optional)
  /// --objective: "edm" or "v", as the model was trained; empty = the
  /// --privacy-summary's diffusion_objective, else "edm".
  std::string objective;
  std::string device = "cpu";
  std::optional<std::uint64_t> seed;  ///< unset: from the OS
  SampleOptions sampler;
};

/// Validates `run` (std::invalid_argument naming the flag or file), builds
/// the model, loads the weights, samples num_samples (and test_samples)
/// images of balanced labels, writes --out (split "train", and "test" when
/// test_samples > 0; root attributes: epsilon, delta and the privacy
/// statement when --privacy-summary is given, the model, guidance, steps,
/// seed) and --grid, and a sidecar "<out>.json" with the same fields.
/// Returns that JSON.
std::string run_diffusion_sampling(const SampleRun& run);

}  // namespace dptrain::train
