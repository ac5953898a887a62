#pragma once
/// DP-aware embedding table: torch::nn::Embedding with per-example gradient
/// recording.

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/options/embedding.h>
#include <torch/nn/pimpl.h>

#include <ostream>

namespace dptrain::dp {

/// Same options as torch::nn::Embedding. `scale_grad_by_freq` (which mixes
/// the examples of a batch), `max_norm` (which renormalises, without noise,
/// the rows a private batch looked up) and `sparse` are refused with
/// std::invalid_argument; `padding_idx` behaves as in torch.
using EmbeddingOptions = torch::nn::EmbeddingOptions;

/// Lookup: indices [N, ...] (int64) → [N, ..., embedding_dim].
class EmbeddingImpl : public torch::nn::Cloneable<EmbeddingImpl> {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim)
      : EmbeddingImpl(EmbeddingOptions(num_embeddings, embedding_dim)) {}
  explicit EmbeddingImpl(EmbeddingOptions options_);

  void reset() override;
  /// N(0, 1) initialisation, padding row zeroed, as torch::nn::Embedding.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  /// [N, ...] int64 → [N, ..., embedding_dim].
  torch::Tensor forward(const torch::Tensor& indices);

  EmbeddingOptions options;
  torch::Tensor weight;  ///< [num_embeddings, embedding_dim]
};
TORCH_MODULE(Embedding);

}  // namespace dptrain::dp
