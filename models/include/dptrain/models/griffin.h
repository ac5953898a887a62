#pragma once
/// Griffin and Hawk language models (De et al. 2024; RecurrentGemma, Botev et
/// al. 2024) built from DP layers, so that the per-example gradient engine
/// clips every parameter exactly per sequence.
///
///   tokens [B, T] → Embedding·√width → blocks → RMSNorm → tied decoder
///   → c·tanh(logits/c)
/// Residual block (pre-norm): x + Temporal(RMSNorm(x)), then + MLP(RMSNorm(·))
/// with a gated-GELU (tanh) MLP. Temporal is a recurrent block (RG-LRU) or
/// local multi-query attention (see griffin_blocks.h).

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dptrain/dp/layers/embedding.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/layers/normalization.h"
#include "dptrain/models/griffin_blocks.h"
#include "dptrain/models/griffin_config.h"

namespace dptrain::models {

/// Fixed-size decoding state: per block the RG-LRU state and conv window, or
/// the attention window's keys and values (a ring buffer of `window` slots).
/// Its size does not depend on how many tokens were decoded.
struct GriffinState {
  std::vector<BlockCache> blocks;
  int64_t position = 0;  ///< tokens consumed so far
};

/// Sampling options of GriffinImpl::generate.
struct GenerateOptions {
  /// 0: greedy (argmax); otherwise softmax(logits / temperature).
  double temperature = 0.0;
  uint64_t seed = 0;
};

/// The Griffin / Hawk language model.
class GriffinImpl : public torch::nn::Module {
 public:
  /// Validates the config (std::invalid_argument) and initialises as the
  /// reference implementation (embeddings N(0, 1/width), a ∈ [0.9, 0.999]).
  explicit GriffinImpl(GriffinConfig config);

  /// tokens [B, T] int64 in [0, vocab) → logits [B, T, vocab].
  /// segment_pos [B, T] int64 (optional): position of each token within its
  /// document; 0 starts a document, where the RG-LRU, the convolution and the
  /// attention reset. Default: one document per row (0 … T−1).
  torch::Tensor forward(const torch::Tensor& tokens,
                        const torch::Tensor& segment_pos = {});

  /// Per-sequence loss for training: sequences [B, L] (L ≥ 2) → [B], each the
  /// mean next-token cross-entropy (nats) of its L−1 predictions. One row is
  /// one privacy unit. exp(mean) is the perplexity.
  /// lengths [B] int64 (optional): row b's valid tokens (2 … L); the rest is
  /// padding, whose predictions carry no loss: the mean is over the
  /// lengths[b] − 1 predictions of valid targets.
  torch::Tensor sequence_losses(const torch::Tensor& sequences,
                                const torch::Tensor& segment_pos = {},
                                const torch::Tensor& lengths = {});

  /// An empty decoding state for `batch` rows on the model's device.
  GriffinState initial_state(int64_t batch) const;
  /// Consumes one token per row (tokens [B] int64) and returns the next-token
  /// logits [B, vocab]. Memory stays fixed (see GriffinState).
  torch::Tensor step(const torch::Tensor& tokens, GriffinState& state);
  /// Feeds the prompt's bytes, then samples `num_bytes` more; returns them.
  /// Throws std::invalid_argument for an empty prompt, num_bytes < 0, or a
  /// vocabulary smaller than 256. `on_byte`, when given, receives each byte
  /// as soon as it is sampled (streaming).
  std::string generate(const std::string& prompt, int64_t num_bytes,
                       const GenerateOptions& options = {},
                       const std::function<void(char)>& on_byte = {});
  /// The same over token ids: feeds `prompt` (ids in [0, vocab)), samples
  /// `num_tokens` more from the whole vocabulary and returns them; stops
  /// early after `stop_id` (>= 0) is sampled. `on_token` receives each id as
  /// it is sampled. Throws std::invalid_argument for an empty prompt, an id
  /// outside the vocabulary or num_tokens < 0.
  std::vector<int64_t> generate_tokens(
      const std::vector<int64_t>& prompt, int64_t num_tokens,
      const GenerateOptions& options = {},
      const std::function<void(int64_t)>& on_token = {}, int64_t stop_id = -1);

  /// Freezes (or unfreezes) the tied embedding. Build the GradientEngine
  /// after changing what is trainable.
  void freeze_embeddings(bool frozen = true);
  /// Only the listed residual blocks stay trainable; the embedding, the
  /// final norm and other blocks are frozen. Throws std::invalid_argument
  /// for an index outside [0, num_blocks).
  void train_only_blocks(const std::vector<int64_t>& block_indices);
  /// Parameters of the instantiated model (tied embedding counted once).
  int64_t num_parameters(bool include_embeddings = true) const;

  const GriffinConfig& config() const { return config_; }

  dp::Embedding embedder{nullptr};
  torch::nn::ModuleList blocks{nullptr};  ///< of ResidualBlock
  dp::RMSNorm final_norm{nullptr};
  dp::Linear decoder{nullptr};  ///< bias-free, weight tied to embedder

 private:
  torch::Tensor run(const torch::Tensor& tokens,
                    const torch::Tensor& segment_pos, GriffinState* state);
  GriffinConfig config_;
};
TORCH_MODULE(Griffin);

/// Parameters under the published RecurrentGemma (PyTorch) names, in their
/// layouts: "embedder.input_embedding" [V, W], "blocks.{i}.temporal_pre_norm.
/// scale", "blocks.{i}.recurrent_block.rg_lru.a_param" [L], "...rg_lru.
/// input_gate.w" [H, L/H, L/H], "...conv_1d.w" [4, L], "...mlp_block.ffw_up.w"
/// [2, W, E], "...attention_block.proj_q.weight" [W, W], "final_norm.scale",
/// … Returned tensors are copies on the CPU.
std::vector<std::pair<std::string, torch::Tensor>> published_parameters(
    const GriffinImpl& model);
/// Copies published-name tensors into the model. Every published name of the
/// config must be present with its shape: throws std::invalid_argument
/// naming the missing parameter or the mismatched shapes. Extra names are
/// ignored.
void load_published_parameters(
    GriffinImpl& model,
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors);

/// Writes published_parameters(model) to an HDF5 file, one float32 dataset
/// per name at the root. Throws std::runtime_error naming the file on
/// failure.
void save_griffin_hdf5(const GriffinImpl& model, const std::string& path);
/// Loads a RecurrentGemma checkpoint stored as one HDF5 dataset per published
/// name (any float type; converted to the model's dtype). Throws
/// std::runtime_error naming the file if it cannot be opened, and
/// std::invalid_argument naming a missing dataset or a shape mismatch.
void load_griffin_hdf5(GriffinImpl& model, const std::string& path);

}  // namespace dptrain::models
