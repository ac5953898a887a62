// Generation cost per token at growing positions: Hawk and Griffin carry a
// fixed-size state (RG-LRU state, conv window, local-attention ring buffer),
// a plain transformer of the same width, depth and MLP a KV cache that grows
// with every token. All three decode one token at a time (batch 1, greedy
// argmax not applied: the next input is a fixed byte, the cost does not depend
// on it) from position 0 to the largest position asked for; at each position
// P the mean time of the tokens P … P+63 is reported, with the decoding
// state's size.
//
//   generation_bench [--positions 1024,4096,16384] [--config griffin-25m]
//                    [--hawk hawk-25m] [--width 128] [--threads N]
//                    [--only hawk|griffin|transformer] [--fill-cache 1]
//
// --fill-cache 1 moves the transformer to each position by marking P cache
// entries filled (zeros) instead of decoding P tokens: its cost per token
// depends only on the cache length, and decoding to 16k at up to ~100 ms per
// token would take half an hour here.
//
// --width W (default 128; 0 keeps the configs' own width) sets the width of
// all three models, with head_dim 64 (W/64 heads) and MLP 3·W; depth, block
// pattern and attention window (512) stay those of the 25M configs. At batch
// 1 the 25M models' step is bound by reading their weights (~50–80 ms per
// token here), and 3 × 16k tokens would take an hour on this machine.
//
// The transformer below is a minimal non-DP decoder written only for this
// comparison (pre-norm, multi-head attention over the whole cache, gated-GELU
// MLP of the same width, no positional encoding: the cost is what matters,
// not the outputs).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "dptrain/models/griffin.h"

namespace {

namespace m = dptrain::models;

constexpr int64_t kWindow = 64;  // tokens timed at each position

// A minimal decoder-only transformer with a growing KV cache.
struct TransformerLayerImpl : torch::nn::Module {
  TransformerLayerImpl(int64_t width, int64_t num_heads, int64_t mlp)
      : heads(num_heads), head_dim(width / num_heads) {
    norm1 = register_module(
        "norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
    norm2 = register_module(
        "norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
    qkv = register_module("qkv", torch::nn::Linear(width, 3 * width));
    out = register_module("out", torch::nn::Linear(width, width));
    up = register_module("up", torch::nn::Linear(width, 2 * mlp));
    down = register_module("down", torch::nn::Linear(mlp, width));
  }
  // x [1, W]; keys/values [1, heads, capacity, head_dim], `length` filled.
  torch::Tensor step(const torch::Tensor& x, torch::Tensor& keys,
                     torch::Tensor& values, int64_t length) {
    auto h = qkv(norm1(x)).view({1, 3, heads, head_dim});
    auto q = h.select(1, 0).unsqueeze(2);  // [1, H, 1, hd]
    keys.narrow(2, length, 1).copy_(h.select(1, 1).unsqueeze(2));
    values.narrow(2, length, 1).copy_(h.select(1, 2).unsqueeze(2));
    auto k = keys.narrow(2, 0, length + 1);
    auto v = values.narrow(2, 0, length + 1);
    auto att = torch::softmax(torch::matmul(q, k.transpose(2, 3)) /
                                  std::sqrt(static_cast<double>(head_dim)),
                              -1);
    auto y = torch::matmul(att, v).reshape({1, heads * head_dim});
    auto r = x + out(y);
    auto g = up(norm2(r)).chunk(2, -1);
    return r + down(torch::gelu(g[0], "tanh") * g[1]);
  }
  int64_t heads, head_dim;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, out{nullptr}, up{nullptr}, down{nullptr};
};
TORCH_MODULE(TransformerLayer);

struct Transformer {
  Transformer(const m::GriffinConfig& c, int64_t capacity) {
    embed = torch::nn::Embedding(c.vocab_size, c.width);
    for (int64_t i = 0; i < c.num_blocks(); ++i) {
      layers.push_back(
          TransformerLayer(c.width, c.num_heads, c.effective_mlp_width()));
      keys.push_back(torch::zeros({1, c.num_heads, capacity, c.head_dim()}));
      values.push_back(torch::zeros({1, c.num_heads, capacity, c.head_dim()}));
    }
  }
  torch::Tensor step(const torch::Tensor& token) {
    auto x = embed(token);
    for (size_t i = 0; i < layers.size(); ++i) {
      x = layers[i]->step(x, keys[i], values[i], length);
    }
    ++length;
    return torch::matmul(x, embed->weight.t());
  }
  // Bytes of the cache actually in use.
  int64_t state_bytes() const {
    int64_t b = 0;
    for (const auto& k : keys) b += 2 * k.size(1) * length * k.size(3) * 4;
    return b;
  }
  torch::nn::Embedding embed{nullptr};
  std::vector<TransformerLayer> layers;
  std::vector<torch::Tensor> keys, values;
  int64_t length = 0;
};

int64_t griffin_state_bytes(const m::GriffinState& s) {
  int64_t b = 0;
  for (const auto& c : s.blocks) {
    for (const auto* t : {&c.rnn, &c.conv, &c.keys, &c.values}) {
      if (t->defined())
        b += t->numel() * static_cast<int64_t>(t->element_size());
    }
  }
  return b;
}

using Clock = std::chrono::steady_clock;

// Decodes up to the last position, timing kWindow tokens at each position.
template <typename Step, typename Bytes>
void run(const std::string& name, const std::vector<int64_t>& positions,
         Step step, Bytes bytes,
         const std::function<void(int64_t)>& jump = {}) {
  torch::NoGradGuard no_grad;
  const auto token = torch::full({1}, 'e', torch::kLong);
  int64_t pos = 0;
  for (const auto target : positions) {
    if (jump) {
      jump(target);
      pos = target;
    }
    while (pos < target) {
      step(token);
      ++pos;
    }
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < kWindow; ++i) step(token);
    const double ms =
        std::chrono::duration<double, std::milli>(Clock::now() - t0).count() /
        kWindow;
    pos += kWindow;
    std::printf("%-12s position %6lld: %7.3f ms/token, state %9.1f KiB\n",
                name.c_str(), static_cast<long long>(target), ms,
                static_cast<double>(bytes()) / 1024.0);
    std::fflush(stdout);
  }
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> positions = {1024, 4096, 16384};
  std::string griffin_name = "griffin-25m", hawk_name = "hawk-25m";
  int threads = 0;
  int64_t width = 128;
  std::string only;
  bool fill_cache = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--positions") {
      positions = parse_list(value);
    } else if (flag == "--config") {
      griffin_name = value;
    } else if (flag == "--hawk") {
      hawk_name = value;
    } else if (flag == "--only") {
      only = value;
    } else if (flag == "--fill-cache") {
      fill_cache = value == "1";
    } else if (flag == "--width") {
      width = std::stoll(value);
    } else if (flag == "--threads") {
      threads = std::stoi(value);
    } else {
      std::cerr << "error: unknown flag " << flag << "\n";
      return 1;
    }
  }
  if (threads > 0) torch::set_num_threads(threads);
  std::printf(
      "threads %d, %lld tokens timed per position, batch 1, float32, CPU\n",
      torch::get_num_threads(), static_cast<long long>(kWindow));
  auto config_of = [width](const std::string& name) {
    auto c = m::griffin_config(name);
    if (width > 0) {
      c.width = width;
      c.num_heads = std::max<int64_t>(1, width / 64);
      c.lru_width = 0;
      c.mlp_expanded_width = 0;
    }
    return c;
  };
  torch::manual_seed(0);
  for (const auto& name : {hawk_name, griffin_name}) {
    if (!only.empty() && only != (name == hawk_name ? "hawk" : "griffin"))
      continue;
    const auto config = config_of(name);
    std::printf(
        "%s: width %lld, %lld blocks, %lld heads, window %lld, %lld "
        "parameters\n",
        name.c_str(), static_cast<long long>(config.width),
        static_cast<long long>(config.num_blocks()),
        static_cast<long long>(config.num_heads),
        static_cast<long long>(config.attention_window),
        static_cast<long long>(m::count_parameters(config)));
    auto model = m::Griffin(config);
    model->eval();
    auto state = model->initial_state(1);
    run(
        name, positions,
        [&](const torch::Tensor& t) { return model->step(t, state); },
        [&] { return griffin_state_bytes(state); });
  }
  if (!only.empty() && only != "transformer") return 0;
  const auto config = config_of(griffin_name);
  Transformer transformer(config, positions.back() + kWindow + 1);
  int64_t transformer_params = transformer.embed->weight.numel();
  for (auto& l : transformer.layers) {
    l->eval();
    for (const auto& p : l->parameters()) transformer_params += p.numel();
  }
  std::printf(
      "transformer: width %lld, %lld layers, %lld heads, full causal "
      "attention, "
      "%lld parameters\n",
      static_cast<long long>(config.width),
      static_cast<long long>(config.num_blocks()),
      static_cast<long long>(config.num_heads),
      static_cast<long long>(transformer_params));
  run(
      "transformer", positions,
      [&](const torch::Tensor& t) { return transformer.step(t); },
      [&] { return transformer.state_bytes(); },
      fill_cache ? std::function<void(int64_t)>(
                       [&](int64_t p) { transformer.length = p; })
                 : std::function<void(int64_t)>());
  return 0;
}
