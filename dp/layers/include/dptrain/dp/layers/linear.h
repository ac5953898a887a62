#pragma once
/// DP-aware fully connected layer: torch::nn::Linear with per-example
/// gradient recording.

#include <ATen/core/Tensor.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/pimpl.h>

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

  LinearOptions options;
  torch::Tensor weight;  ///< [out, in]
  torch::Tensor bias;    ///< [out], undefined without bias
};
TORCH_MODULE(Linear);

}  // namespace dptrain::dp
