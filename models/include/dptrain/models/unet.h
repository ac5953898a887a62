#pragma once
/// A class-conditional denoising UNet built only from DP layers (Conv2d,
/// GroupNorm, Linear, Embedding), for private diffusion fine-tuning
/// (Dockhorn et al. 2023, DPDM; Ghalebikesabi et al. 2023). Every layer acts
/// on one image at a time (GroupNorm, per-image self-attention), so the
/// per-example clipping engine clips it exactly.
///
/// Layout (ADM / DPDM style):
///   conv_in 3×3 → for each level l: blocks_per_level residual blocks at
///   channels[l] (self-attention after each where l is an attention level),
///   then a stride-2 3×3 downsampling convolution except at the last level;
///   middle: residual block, attention, residual block; the up path mirrors
///   it with blocks_per_level + 1 blocks per level, each taking the matching
///   skip connection, and nearest ×2 upsampling then a 3×3 convolution;
///   out: GroupNorm → SiLU → 3×3 convolution to in_channels.
/// Conditioning: the noise level c_noise goes through a sinusoidal embedding
/// and an MLP (Linear → SiLU → Linear); a learned class embedding with one
/// extra "null" class (classifier-free guidance) is added to it; each
/// residual block adds a Linear projection of SiLU(embedding) to its first
/// convolution's output.

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/embedding.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/layers/normalization.h"

namespace dptrain::models {

struct UNetConfig {
  std::string name;         ///< e.g. "unet-dpdm"
  int64_t image_size = 28;  ///< height = width; divisible by 2^(levels−1)
  int64_t in_channels = 1;  ///< image channels
  int64_t num_classes = 10;  ///< labels 0 … num_classes−1; num_classes = null
  std::vector<int64_t> channels = {32, 64, 64};  ///< per level
  int64_t blocks_per_level = 2;
  /// Levels (0 = full resolution) with self-attention after each block.
  std::vector<int64_t> attention_levels = {2};
  int64_t attention_heads = 1;  ///< must divide every attention level's width
  /// Width of the noise-level/class embedding (0: 4 · channels[0]).
  int64_t embedding_dim = 0;
  int64_t norm_groups = 8;  ///< GroupNorm groups: min(norm_groups, channels)

  /// Throws std::invalid_argument naming the bad field and value.
  void validate() const;
  int64_t embedding_width() const {
    return embedding_dim > 0 ? embedding_dim : 4 * channels.front();
  }
};

/// Named configurations: "unet-dpdm" (28×28, channels 32/64/64 at
/// 28→14→7, two blocks a level, attention at 7×7, as DPDM), "unet-small"
/// (28×28, 16/32/32, one block a level: CPU-sized), "unet-32" (32×32 RGB,
/// 64/128/256/256, attention at 8×8 and 4×4) and "unet-64" (64×64 RGB,
/// 64/128/256/256, attention at 16×16 and 8×8). Throws
/// std::invalid_argument listing the names for another.
UNetConfig unet_config(const std::string& name);
std::vector<std::string> unet_config_names();

/// GroupNorm → SiLU → conv3×3 (+ projection of the embedding) → GroupNorm →
/// SiLU → conv3×3, plus the input (through a 1×1 convolution when the
/// widths differ).
class UNetResBlockImpl : public torch::nn::Module {
 public:
  UNetResBlockImpl(int64_t in_channels, int64_t out_channels,
                   int64_t embedding_dim, int64_t norm_groups);
  /// x [N, in, H, W], embedding [N, E] (already through SiLU) → [N, out, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& embedding);

  dp::GroupNorm norm0{nullptr}, norm1{nullptr};
  dp::Conv2d conv0{nullptr}, conv1{nullptr}, skip{nullptr};
  dp::Linear embedding_projection{nullptr};
};
TORCH_MODULE(UNetResBlock);

/// Multi-head self-attention over the H·W positions of each image:
/// GroupNorm → Linear to q, k, v → softmax(q·kᵀ/√d)·v → Linear, plus the
/// input.
class UNetAttentionImpl : public torch::nn::Module {
 public:
  UNetAttentionImpl(int64_t channels, int64_t heads, int64_t norm_groups);
  torch::Tensor forward(const torch::Tensor& x);

  int64_t heads;
  dp::GroupNorm norm{nullptr};
  dp::Linear qkv{nullptr}, out{nullptr};
};
TORCH_MODULE(UNetAttention);

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(UNetConfig config);
  /// x [N, in_channels, S, S] (the preconditioned noisy image), noise_level
  /// [N] (c_noise, e.g. ln(σ)/4 in EDM), labels [N] int64 in
  /// [0, num_classes], num_classes meaning "no label" → [N, in_channels, S,
  /// S]. Throws std::invalid_argument on other shapes or labels.
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& noise_level,
                        const torch::Tensor& labels);

  const UNetConfig& config() const { return config_; }
  /// The label of the unconditional model (classifier-free guidance).
  int64_t null_class() const { return config_.num_classes; }
  /// Trainable parameters.
  int64_t num_parameters() const;

  dp::Conv2d conv_in{nullptr}, conv_out{nullptr};
  dp::GroupNorm norm_out{nullptr};
  dp::Linear embed0{nullptr}, embed1{nullptr};
  dp::Embedding class_embedding{nullptr};

 private:
  struct Stage {  // one block or resampling step, in forward order
    UNetResBlock block{nullptr};
    UNetAttention attention{nullptr};
    dp::Conv2d resample{nullptr};  // down: stride 2; up: after ×2 nearest
  };
  UNetConfig config_;
  std::vector<Stage> down_, up_;
  UNetResBlock middle0_{nullptr}, middle1_{nullptr};
  UNetAttention middle_attention_{nullptr};
};
TORCH_MODULE(UNet);

/// [N] noise levels → [N, dim] sinusoidal features (cos | sin, frequencies
/// 10000^(−i/(dim/2))), dim even.
torch::Tensor sinusoidal_embedding(const torch::Tensor& noise_level,
                                   int64_t dim);

}  // namespace dptrain::models
