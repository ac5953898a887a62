#pragma once
/// A small token model for benchmarks and tests: embedding, residual
/// per-position MLP blocks with LayerNorm, a final RMSNorm and a vocabulary
/// head — Embedding, Linear, LayerNorm and RMSNorm on [B, T, d] inputs, the
/// sequence shapes of a language model without attention.

#include <ATen/core/Tensor.h>
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <vector>

#include "dptrain/dp/layers/embedding.h"
#include "dptrain/dp/layers/linear.h"
#include "dptrain/dp/layers/normalization.h"

namespace dptrain::models {

/// Options of SequenceMlp.
struct SequenceMlpOptions {
  /// Tokens 0 … vocab_size − 1; also the head's output size.
  TORCH_ARG(int64_t, vocab_size) = 256;
  /// Model width d (embedding size and every Linear's in/out).
  TORCH_ARG(int64_t, width) = 256;
  /// Residual blocks.
  TORCH_ARG(int64_t, num_layers) = 4;
};

/// tokens [N, T] → embed → num_layers × (x + GELU(Linear(LayerNorm(x))))
/// → RMSNorm → head Linear(width → vocab_size) → logits [N, T, vocab_size].
/// Submodules `embedding`, `blocks.{i}.norm`, `blocks.{i}.linear`,
/// `final_norm`, `head`. With the defaults: 4 blocks of width 256, vocab 256,
/// 396,800 parameters. Rows (examples) are independent.
class SequenceMlpImpl : public torch::nn::Module {
 public:
  /// Throws std::invalid_argument naming the option if any is < 1.
  explicit SequenceMlpImpl(SequenceMlpOptions options = {});
  /// tokens [N, T] (int64, in [0, vocab_size)) → logits [N, T, vocab_size].
  /// Throws std::invalid_argument for another rank or dtype.
  torch::Tensor forward(const torch::Tensor& tokens);

  SequenceMlpOptions options;
  dp::Embedding embedding{nullptr};
  std::vector<dp::LayerNorm> norms;
  std::vector<dp::Linear> linears;
  dp::RMSNorm final_norm{nullptr};
  dp::Linear head{nullptr};
};
TORCH_MODULE(SequenceMlp);

}  // namespace dptrain::models
