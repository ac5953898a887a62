#include "dptrain/models/sequence_mlp.h"

#include <torch/torch.h>

#include <stdexcept>
#include <string>

#include "dptrain/models/activations.h"

namespace dptrain::models {

SequenceMlpImpl::SequenceMlpImpl(SequenceMlpOptions options_)
    : options(options_) {
  auto check = [](const char* name, int64_t value) {
    if (value < 1) {
      throw std::invalid_argument(std::string("SequenceMlp: ") + name +
                                  " must be >= 1, got " +
                                  std::to_string(value));
    }
  };
  check("vocab_size", options.vocab_size());
  check("width", options.width());
  check("num_layers", options.num_layers());
  const int64_t d = options.width();
  embedding =
      register_module("embedding", dp::Embedding(options.vocab_size(), d));
  auto blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_layers(); ++i) {
    auto block = std::make_shared<torch::nn::Module>("SequenceMlpBlock");
    norms.push_back(
        block->register_module("norm", dp::LayerNorm(std::vector<int64_t>{d})));
    linears.push_back(block->register_module("linear", dp::Linear(d, d)));
    blocks->push_back(block);
  }
  final_norm = register_module("final_norm", dp::RMSNorm(d));
  head = register_module("head", dp::Linear(d, options.vocab_size()));
}

torch::Tensor SequenceMlpImpl::forward(const torch::Tensor& tokens) {
  if (tokens.dim() != 2 || tokens.scalar_type() != torch::kLong) {
    throw std::invalid_argument(
        "SequenceMlp: tokens must be an int64 tensor [N, T], got " +
        std::string(c10::toString(tokens.scalar_type())) + " " +
        c10::str(tokens.sizes()));
  }
  auto x = embedding(tokens);
  for (size_t i = 0; i < linears.size(); ++i) {
    x = x + gelu_exact(linears[i](norms[i](x)));
  }
  return head(final_norm(x));
}

}  // namespace dptrain::models
