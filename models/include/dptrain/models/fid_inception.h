#pragma once
/// InceptionV3 in pytorch-fid's FID layout (Seitzer, pytorch-fid; the
/// TensorFlow FID network of Heusel et al. 2017), from plain torch::nn
/// modules: this network only evaluates, it is never trained here.
///
/// Module paths are torchvision's Inception3 as pytorch-fid's
/// pt_inception-2015-12-05 weights name them ("Conv2d_1a_3x3.conv.weight",
/// "Mixed_5b.branch_pool.bn.running_var", …, "fc.weight"), with no
/// AuxLogits and a 1008-way fc (the TF graph's head). Each BasicConv2d is
/// conv (no bias) → BatchNorm (eps 0.001, eval statistics) → ReLU.
///   Conv2d_1a_3x3 3→32 s2, Conv2d_2a_3x3 32→32, Conv2d_2b_3x3 32→64 p1,
///   max-pool 3 s2, Conv2d_3b_1x1 64→80, Conv2d_4a_3x3 80→192, max-pool 3 s2,
///   Mixed_5b/5c/5d FIDInceptionA (pool features 32/64/64; 256/288/288 out),
///   Mixed_6a InceptionB (768), Mixed_6b–6e FIDInceptionC (7×7 widths
///   128/160/160/192; 768), Mixed_7a InceptionD (1280), Mixed_7b
///   FIDInceptionE_1 (2048), Mixed_7c FIDInceptionE_2 (2048), global
///   average pool → the 2048-d FID features.
/// The FID variants differ from torchvision's blocks in their pool branch:
/// A, C and E_1 average-pool 3×3 without counting padding; E_2 max-pools.
///
/// Weights: pytorch-fid's .pth cannot be read by LibTorch directly; convert
/// it to our HDF5 layout (weights.h: one dataset per state-dict name) or a
/// torch::save of this module, then load_fid_inception_weights.
/// num_batches_tracked buffers (unused in eval) are neither required nor
/// loaded, as some converted files lack them.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dptrain/models/weights.h"

namespace dptrain::models {

struct FidInceptionOptions {
  /// Bilinearly resize the input to 299×299 (align_corners false), as
  /// pytorch-fid; otherwise the input must be at least 75×75.
  bool resize_input = true;
  /// Inputs in [0, 1] are mapped to [−1, 1] (2x − 1), as pytorch-fid.
  bool normalize_input = true;
};

class FidInceptionV3Impl : public torch::nn::Module {
 public:
  explicit FidInceptionV3Impl(FidInceptionOptions options = {});
  /// The 2048-d pool features [N, 2048] of images [N, 3, H, W] (or
  /// [N, 1, H, W], repeated to 3 channels). Throws std::invalid_argument for
  /// another shape. Call eval() first for FID (BatchNorm's statistics).
  at::Tensor forward(const at::Tensor& images);
  /// The 1008 logits of the TF graph's head on features [N, 2048].
  at::Tensor logits(const at::Tensor& features);

  FidInceptionOptions options;

 private:
  std::vector<std::function<at::Tensor(const at::Tensor&)>> stages_;
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(FidInceptionV3);

/// Loads a converted pytorch-fid weights file (.h5/.hdf5 or .pt/.pth in
/// our formats, weights.h) into `model`, skipping num_batches_tracked.
/// Throws std::invalid_argument as load_weights does.
LoadReport load_fid_inception_weights(FidInceptionV3Impl& model,
                                      const std::string& path);

}  // namespace dptrain::models
