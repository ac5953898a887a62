#include "dptrain/models/griffin.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <unordered_set>

namespace dptrain::models {

GriffinImpl::GriffinImpl(GriffinConfig config) : config_(std::move(config)) {
  config_.validate();
  const int64_t w = config_.width, v = config_.vocab_size;
  embedder = register_module("embedder", dp::Embedding(v, w));
  {
    torch::NoGradGuard no_grad;
    embedder->weight.normal_(0.0, std::sqrt(1.0 / static_cast<double>(w)));
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (auto type : config_.block_types) {
    blocks->push_back(ResidualBlock(config_, type));
  }
  final_norm = register_module("final_norm", dp::RMSNorm(w));
  decoder = register_module("decoder",
                            dp::Linear(dp::LinearOptions(w, v).bias(false)));
  decoder->tie_weight(embedder->weight);
}

torch::Tensor GriffinImpl::run(const torch::Tensor& tokens,
                               const torch::Tensor& segment_pos,
                               GriffinState* state) {
  if (!tokens.defined() || tokens.dim() != 2 ||
      tokens.scalar_type() != torch::kLong) {
    throw std::invalid_argument(
        "Griffin: tokens must be an int64 tensor [B, T], got " +
        (tokens.defined() ? std::string(c10::toString(tokens.scalar_type())) +
                                " " + c10::str(tokens.sizes())
                          : std::string("an undefined tensor")));
  }
  const int64_t batch = tokens.size(0), steps = tokens.size(1);
  if (tokens.numel() > 0) {
    const int64_t lo = tokens.min().item<int64_t>();
    const int64_t hi = tokens.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size) {
      throw std::invalid_argument("Griffin: tokens must lie in [0, " +
                                  std::to_string(config_.vocab_size) +
                                  "), got values in [" + std::to_string(lo) +
                                  ", " + std::to_string(hi) + "]");
    }
  }
  torch::Tensor pos = segment_pos;
  if (!pos.defined()) {
    pos = torch::arange(steps, tokens.options())
              .unsqueeze(0)
              .expand({batch, steps});
  } else if (pos.sizes() != tokens.sizes()) {
    throw std::invalid_argument(
        "Griffin: segment_pos must have the shape of "
        "tokens " +
        c10::str(tokens.sizes()) + ", got " + c10::str(pos.sizes()));
  }
  auto x = embedder(tokens);
  if (config_.scale_embeddings) {
    x = x * std::sqrt(static_cast<double>(config_.width));
  }
  for (size_t i = 0; i < blocks->size(); ++i) {
    BlockCache* cache = state != nullptr ? &state->blocks[i] : nullptr;
    x = blocks[i]->as<ResidualBlockImpl>()->forward(
        x, pos, cache, state != nullptr ? state->position : 0);
  }
  auto logits = decoder(final_norm(x));
  const double cap = config_.logits_soft_cap;
  if (cap > 0) logits = torch::tanh(logits / cap) * cap;
  return logits;
}

torch::Tensor GriffinImpl::forward(const torch::Tensor& tokens,
                                   const torch::Tensor& segment_pos) {
  return run(tokens, segment_pos, nullptr);
}

torch::Tensor GriffinImpl::sequence_losses(const torch::Tensor& sequences,
                                           const torch::Tensor& segment_pos,
                                           const torch::Tensor& lengths) {
  if (!sequences.defined() || sequences.dim() != 2 || sequences.size(1) < 2) {
    throw std::invalid_argument(
        "Griffin::sequence_losses: sequences must be [B, L] with L >= 2, got " +
        (sequences.defined() ? c10::str(sequences.sizes())
                             : std::string("an undefined tensor")));
  }
  const int64_t batch = sequences.size(0), steps = sequences.size(1) - 1;
  const auto inputs = sequences.narrow(1, 0, steps);
  const auto targets = sequences.narrow(1, 1, steps);
  const auto pos =
      segment_pos.defined() ? segment_pos.narrow(1, 0, steps) : torch::Tensor();
  const auto logits = forward(inputs, pos);
  const auto nll = torch::nn::functional::cross_entropy(
      logits.reshape({batch * steps, -1}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  if (!lengths.defined()) return nll.view({batch, steps}).mean(1);
  if (lengths.dim() != 1 || lengths.size(0) != batch) {
    throw std::invalid_argument(
        "Griffin::sequence_losses: lengths must be [B] = [" +
        std::to_string(batch) + "], got " + c10::str(lengths.sizes()));
  }
  // Checked where the lengths are (the CPU, from a TextDataset) before they
  // move: no device synchronisation on the training path.
  const auto bad = (lengths < 2).logical_or(lengths > steps + 1);
  if (bad.any().item<bool>()) {
    throw std::invalid_argument(
        "Griffin::sequence_losses: lengths must be in [2, " +
        std::to_string(steps + 1) + "]");
  }
  const auto n = lengths.to(sequences.device(), torch::kLong);
  // Prediction t (of target t + 1) is valid when t + 1 < length.
  const auto t = torch::arange(steps, n.options()).unsqueeze(0);
  const auto valid = (t + 1 < n.unsqueeze(1)).to(nll.scalar_type());
  return (nll.view({batch, steps}) * valid).sum(1) /
         (n - 1).to(nll.scalar_type());
}

GriffinState GriffinImpl::initial_state(int64_t batch) const {
  if (batch < 1) {
    throw std::invalid_argument(
        "Griffin::initial_state: batch must be >= 1, "
        "got " +
        std::to_string(batch));
  }
  const auto opts = embedder->weight.options().requires_grad(false);
  const auto state_opts = opts.dtype(
      opts.dtype() == torch::kDouble ? torch::kDouble : torch::kFloat);
  const int64_t l = config_.effective_lru_width();
  GriffinState state;
  for (auto type : config_.block_types) {
    BlockCache c;
    if (type == TemporalBlockType::kRecurrent) {
      c.rnn = torch::zeros({batch, l}, state_opts);
      c.conv = torch::zeros({batch, config_.conv_width - 1, l}, opts);
    } else {
      c.keys = torch::zeros(
          {batch, config_.attention_window, config_.head_dim()}, opts);
      c.values = torch::zeros_like(c.keys);
    }
    state.blocks.push_back(std::move(c));
  }
  return state;
}

torch::Tensor GriffinImpl::step(const torch::Tensor& tokens,
                                GriffinState& state) {
  if (!tokens.defined() || tokens.dim() != 1 ||
      static_cast<int64_t>(state.blocks.size()) != config_.num_blocks() ||
      (config_.num_blocks() > 0 &&
       (state.blocks[0].rnn.defined()
            ? state.blocks[0].rnn.size(0)
            : state.blocks[0].keys.size(0)) != tokens.size(0))) {
    throw std::invalid_argument(
        "Griffin::step: tokens must be [B] for a state from "
        "initial_state(B), got " +
        (tokens.defined() ? c10::str(tokens.sizes()) : std::string("none")));
  }
  torch::NoGradGuard no_grad;
  const auto tok = tokens.view({-1, 1});
  const auto pos = torch::full_like(tok, state.position);
  auto logits = run(tok, pos, &state);
  state.position += 1;
  return logits.select(1, 0);
}

namespace {

// Feeds `prompt`, then samples up to `num_tokens` ids among the first
// `limit` of the vocabulary (greedy at temperature 0), stopping after
// `stop_id`. The callers have validated their arguments.
std::vector<int64_t> sample_tokens(GriffinImpl& model,
                                   const torch::Device& device,
                                   const std::vector<int64_t>& prompt,
                                   int64_t num_tokens,
                                   const GenerateOptions& options,
                                   const std::function<void(int64_t)>& on_token,
                                   int64_t stop_id, int64_t limit) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  GriffinState state = model.initial_state(1);
  torch::Tensor logits;
  const auto long_opts =
      torch::TensorOptions().dtype(torch::kLong).device(device);
  for (const auto id : prompt) {
    logits = model.step(torch::full({1}, id, long_opts), state);
  }
  std::vector<int64_t> out;
  for (int64_t i = 0; i < num_tokens; ++i) {
    auto row = logits.select(0, 0)
                   .narrow(0, 0, limit)
                   .to(torch::kCPU)
                   .to(torch::kDouble);
    int64_t next = 0;
    if (options.temperature == 0) {
      next = row.argmax().item<int64_t>();
    } else {
      const auto probs = torch::softmax(row / options.temperature, 0);
      next = torch::multinomial(probs, 1, false, gen).item<int64_t>();
    }
    out.push_back(next);
    if (on_token) on_token(next);
    if (next == stop_id) break;
    logits = model.step(torch::full({1}, next, long_opts), state);
  }
  return out;
}

void check_temperature(const char* what, double temperature) {
  if (!(temperature >= 0) || !std::isfinite(temperature)) {
    throw std::invalid_argument(std::string("Griffin::") + what +
                                ": temperature must be finite and >= 0, got " +
                                std::to_string(temperature));
  }
}

}  // namespace

std::vector<int64_t> GriffinImpl::generate_tokens(
    const std::vector<int64_t>& prompt, int64_t num_tokens,
    const GenerateOptions& options,
    const std::function<void(int64_t)>& on_token, int64_t stop_id) {
  if (prompt.empty()) {
    throw std::invalid_argument(
        "Griffin::generate_tokens: prompt must not be empty");
  }
  if (num_tokens < 0) {
    throw std::invalid_argument(
        "Griffin::generate_tokens: num_tokens must be >= 0, got " +
        std::to_string(num_tokens));
  }
  for (const auto id : prompt) {
    if (id < 0 || id >= config_.vocab_size) {
      throw std::invalid_argument("Griffin::generate_tokens: prompt id " +
                                  std::to_string(id) +
                                  " is outside the vocabulary [0, " +
                                  std::to_string(config_.vocab_size) + ")");
    }
  }
  check_temperature("generate_tokens", options.temperature);
  return sample_tokens(*this, embedder->weight.device(), prompt, num_tokens,
                       options, on_token, stop_id, config_.vocab_size);
}

std::string GriffinImpl::generate(const std::string& prompt, int64_t num_bytes,
                                  const GenerateOptions& options,
                                  const std::function<void(char)>& on_byte) {
  if (prompt.empty()) {
    throw std::invalid_argument("Griffin::generate: prompt must not be empty");
  }
  if (num_bytes < 0) {
    throw std::invalid_argument(
        "Griffin::generate: num_bytes must be >= 0, got " +
        std::to_string(num_bytes));
  }
  if (config_.vocab_size < 256) {
    throw std::invalid_argument(
        "Griffin::generate: needs a byte vocabulary (>= 256), got " +
        std::to_string(config_.vocab_size));
  }
  check_temperature("generate", options.temperature);
  std::vector<int64_t> bytes_in;
  for (unsigned char c : prompt) bytes_in.push_back(c);
  std::string out;
  // Bytes only: tokens >= 256 of a larger vocabulary are never sampled.
  sample_tokens(
      *this, embedder->weight.device(), bytes_in, num_bytes, options,
      [&](int64_t next) {
        out.push_back(static_cast<char>(static_cast<unsigned char>(next)));
        if (on_byte) on_byte(out.back());
      },
      /*stop_id=*/-1, /*limit=*/256);
  return out;
}

void GriffinImpl::freeze_embeddings(bool frozen) {
  embedder->weight.set_requires_grad(!frozen);
}

void GriffinImpl::train_only_blocks(const std::vector<int64_t>& block_indices) {
  for (int64_t i : block_indices) {
    if (i < 0 || i >= config_.num_blocks()) {
      throw std::invalid_argument(
          "Griffin::train_only_blocks: block index must be in [0, " +
          std::to_string(config_.num_blocks()) + "), got " + std::to_string(i));
    }
  }
  for (auto& p : parameters()) p.set_requires_grad(false);
  for (int64_t i : block_indices) {
    for (auto& p : blocks[static_cast<size_t>(i)]->parameters()) {
      p.set_requires_grad(true);
    }
  }
}

int64_t GriffinImpl::num_parameters(bool include_embeddings) const {
  std::unordered_set<const void*> seen;
  int64_t total = 0;
  for (const auto& p : parameters()) {
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;
    if (!include_embeddings &&
        p.unsafeGetTensorImpl() == embedder->weight.unsafeGetTensorImpl()) {
      continue;
    }
    total += p.numel();
  }
  return total;
}

}  // namespace dptrain::models
