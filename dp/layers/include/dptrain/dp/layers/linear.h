#pragma once
/// DP-aware fully connected layer: torch::nn::Linear with per-example
/// gradient recording.

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <ostream>

namespace dptrain::dp {

/// Same options as torch::nn::Linear: LinearOptions(in, out).bias(true).
using LinearOptions = torch::nn::LinearOptions;

/// y = x Wᵀ + b. Input [N, in] or [N, T..., in]; output [N, ..., out]. The
/// first dimension indexes rows (examples, or views of examples).
class LinearImpl : public torch::nn::Cloneable<LinearImpl> {
 public:
  LinearImpl(int64_t in_features, int64_t out_features)
      : LinearImpl(LinearOptions(in_features, out_features)) {}
  explicit LinearImpl(const LinearOptions& options_);

  void reset() override;
  /// Initialises as torch::nn::Linear does (Kaiming-uniform, a = √5).
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  /// [N, ..., in] → [N, ..., out].
  torch::Tensor forward(const torch::Tensor& input);

  /// Makes `shared` (shape [out, in], e.g. an Embedding's weight) this layer's
  /// weight: tied weights. The old weight is dropped from parameters().
  /// Throws std::invalid_argument on a shape mismatch.
  void tie_weight(const torch::Tensor& shared);

  /// LoRA (Hu et al. 2021): from now on forward adds (alpha/rank)·B(A x),
  /// with A [rank, in] (lora_a, Kaiming-uniform as a fresh Linear) and B
  /// [out, rank] (lora_b, zeros, so the output is unchanged at first), both
  /// bias-free DP Linears that record and clip as any other; weight and bias
  /// are frozen (requires_grad false), so they cost no per-example work and
  /// get no noise. Throws std::invalid_argument for rank < 1, alpha not
  /// finite and > 0, or a layer that already has adapters.
  void add_lora(int64_t rank, double alpha);
  bool has_lora() const { return lora_rank_ > 0; }
  int64_t lora_rank() const { return lora_rank_; }
  /// alpha / rank (0 without LoRA).
  double lora_scale() const;
  /// weight + (alpha/rank)·B·A, a new tensor (weight itself without LoRA):
  /// what a layer without adapters needs to compute the same function.
  torch::Tensor merged_weight() const;

  LinearOptions options;
  torch::Tensor weight;  ///< [out, in]
  torch::Tensor bias;    ///< [out], undefined without bias
  /// The adapters (null without LoRA).
  std::shared_ptr<LinearImpl> lora_a;  ///< in -> rank
  std::shared_ptr<LinearImpl> lora_b;  ///< rank -> out

 private:
  void register_lora();
  int64_t lora_rank_ = 0;
  double lora_alpha_ = 0.0;
};
TORCH_MODULE(Linear);

}  // namespace dptrain::dp
