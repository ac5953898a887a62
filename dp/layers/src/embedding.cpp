#include "dptrain/dp/layers/embedding.h"

#include <torch/torch.h>

#include <stdexcept>

#include "dptrain/dp/layers/recording.h"

namespace dptrain::dp {

EmbeddingImpl::EmbeddingImpl(EmbeddingOptions options_)
    : options(std::move(options_)) {
  reset();
}

void EmbeddingImpl::reset() {
  if (options.num_embeddings() <= 0 || options.embedding_dim() <= 0) {
    throw std::invalid_argument(
        "Embedding: num_embeddings and embedding_dim must be > 0, got " +
        std::to_string(options.num_embeddings()) + " and " +
        std::to_string(options.embedding_dim()));
  }
  if (options.scale_grad_by_freq()) {
    throw std::invalid_argument(
        "Embedding: scale_grad_by_freq=true mixes the examples of a batch and "
        "is not supported under DP");
  }
  if (options.sparse()) {
    throw std::invalid_argument(
        "Embedding: sparse=true is not supported (gradients are dense)");
  }
  if (options.max_norm().has_value()) {
    // torch renormalises, without noise, exactly the rows a batch looked up:
    // the weights then reveal which tokens the private batch held.
    throw std::invalid_argument(
        "Embedding: max_norm is not supported under DP (it renormalises the "
        "rows a private batch touched, without noise)");
  }
  if (options.padding_idx().has_value()) {
    int64_t idx = *options.padding_idx();
    const int64_t n = options.num_embeddings();
    if (idx < -n || idx >= n) {
      throw std::invalid_argument(
          "Embedding: padding_idx must be in [" + std::to_string(-n) + ", " +
          std::to_string(n) + "), got " + std::to_string(idx));
    }
    if (idx < 0) options.padding_idx(idx + n);
  }
  if (options._weight().defined()) {
    weight = register_parameter("weight", options._weight());
  } else {
    weight = register_parameter(
        "weight",
        torch::empty({options.num_embeddings(), options.embedding_dim()}));
    reset_parameters();
  }
}

void EmbeddingImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(weight);
  if (options.padding_idx().has_value())
    weight[*options.padding_idx()].fill_(0);
}

void EmbeddingImpl::pretty_print(std::ostream& stream) const {
  stream << "dptrain::dp::Embedding(num_embeddings=" << options.num_embeddings()
         << ", embedding_dim=" << options.embedding_dim() << ")";
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& indices) {
  const int64_t padding = options.padding_idx().value_or(-1);
  auto output = torch::embedding(weight, indices, padding, false, false);
  detail::maybe_record(*this, indices, output);
  return output;
}

}  // namespace dptrain::dp
