#pragma once
/// The blocks of Griffin / Hawk, built from DP layers (see griffin.h).

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>

#include "dptrain/dp/layers/conv.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/layers/normalization.h"
#include "dptrain/dp/layers/softplus_scale.h"
#include "dptrain/models/griffin_config.h"

namespace dptrain::models {

/// Decoding cache of one residual block (the fields its type uses).
struct BlockCache {
  torch::Tensor rnn;     ///< [B, lru] RG-LRU state (float32 at least)
  torch::Tensor conv;    ///< [B, conv_width − 1, lru] last conv inputs
  torch::Tensor keys;    ///< [B, window, head_dim] ring buffer (RoPE applied)
  torch::Tensor values;  ///< [B, window, head_dim]
};

namespace detail {
/// h_t = a_t·h_{t−1} + x_t with a_t = exp(log_a_t), h reset (a_t = 0) where
/// reset[b, t]; log_a, x [B, T, D], reset [B, T] bool, h0 [B, D] or
/// undefined. Chunks of `chunk` steps are solved in closed form in log space
/// (stable: only exp of sums of log a ≤ 0). Returns h [B, T, D].
torch::Tensor linear_scan(const torch::Tensor& log_a, const torch::Tensor& x,
                          const torch::Tensor& reset, const torch::Tensor& h0,
                          int64_t chunk);
/// RoPE on the first half of the last dimension: x [B, T, N, hd], pos [B, T].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& pos);
}  // namespace detail

/// Real-Gated Linear Recurrent Unit: gates iₜ = σ(BlockDiag_i xₜ), rₜ =
/// σ(BlockDiag_a xₜ) (each block a dp::Linear), log aₜ = −8·rₜ·softplus(Λ),
/// hₜ = aₜ⊙hₜ₋₁ + √(1−aₜ²)⊙(iₜ⊙xₜ) (multiplier 1 and no carry at a reset).
class RgLruImpl : public torch::nn::Module {
 public:
  RgLruImpl(int64_t width, int64_t num_blocks);
  void reset_parameters();
  /// x [B, T, width], segment_pos [B, T]; with `state` ([B, width], updated
  /// in place to the last h), continues from it.
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& segment_pos, torch::Tensor* state,
                        int64_t chunk);
  dp::SoftplusScale a_param{nullptr};         ///< Λ, [width]
  torch::nn::ModuleList input_gate{nullptr};  ///< num_blocks × Linear(bw, bw)
  torch::nn::ModuleList a_gate{nullptr};
  int64_t width, num_blocks;
};
TORCH_MODULE(RgLru);

/// GELU(Linear_y x) ⊙ RG-LRU(Conv1D(Linear_x x)) → Linear_out.
class RecurrentBlockImpl : public torch::nn::Module {
 public:
  explicit RecurrentBlockImpl(const GriffinConfig& config);
  /// x [B, T, width] → [B, T, width]; cache: decoding (T = 1).
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& segment_pos, BlockCache* cache);
  dp::Linear linear_y{nullptr}, linear_x{nullptr}, linear_out{nullptr};
  dp::Conv1d conv_1d{nullptr};  ///< depthwise, causal; weight [lru, 1, K]
  RgLru rg_lru{nullptr};
  int64_t conv_width, scan_chunk;
};
TORCH_MODULE(RecurrentBlock);

/// Local multi-query attention (one key/value head), RoPE on half the head
/// dimension, scale head_dim^−½, query t sees keys t−window … t of its
/// document.
class LocalAttentionBlockImpl : public torch::nn::Module {
 public:
  explicit LocalAttentionBlockImpl(const GriffinConfig& config);
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& segment_pos, BlockCache* cache,
                        int64_t position);
  dp::Linear proj_q{nullptr}, proj_k{nullptr}, proj_v{nullptr},
      proj_final{nullptr};
  int64_t num_heads, head_dim, window;
};
TORCH_MODULE(LocalAttentionBlock);

/// ffw_down(GELU(ffw_gate x) ⊙ ffw_up x); the published ffw_up.w [2, W, E]
/// holds ffw_gate (index 0) and ffw_up (index 1).
class MlpBlockImpl : public torch::nn::Module {
 public:
  MlpBlockImpl(int64_t width, int64_t expanded_width);
  torch::Tensor forward(const torch::Tensor& x);
  dp::Linear ffw_gate{nullptr}, ffw_up{nullptr}, ffw_down{nullptr};
};
TORCH_MODULE(MlpBlock);

/// Pre-norm residual block with a temporal block and an MLP.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(const GriffinConfig& config, TemporalBlockType type);
  torch::Tensor forward(const torch::Tensor& x,
                        const torch::Tensor& segment_pos, BlockCache* cache,
                        int64_t position);
  TemporalBlockType type;
  dp::RMSNorm temporal_pre_norm{nullptr}, channel_pre_norm{nullptr};
  RecurrentBlock recurrent_block{nullptr};
  LocalAttentionBlock attention_block{nullptr};
  MlpBlock mlp_block{nullptr};
};
TORCH_MODULE(ResidualBlock);

}  // namespace dptrain::models
