#include "dptrain/models/griffin_blocks.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace dptrain::models {
namespace {

// √x with its derivative bounded by 1000 (the reference's
// SqrtBoundDerivative): d√x/dx = 1/√max(4x, 1e-6).
struct SqrtBoundDerivative
    : public torch::autograd::Function<SqrtBoundDerivative> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx,
                               const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return x.sqrt();
  }
  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grad) {
    const auto x = ctx->get_saved_variables()[0];
    return {grad[0] / torch::sqrt(torch::clamp_min(4.0 * x, 1e-6))};
  }
};

// Function<T>::apply reserves a std::vector<bool> of one element; GCC 14
// (Debian 13) inlines that reserve here and reports a spurious -Warray-bounds
// and -Wstringop-overflow inside libstdc++'s copy (false positives on
// vector<bool>, not in our code).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
torch::Tensor sqrt_bound_derivative(const torch::Tensor& x) {
  return SqrtBoundDerivative::apply(x);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// The accumulation dtype of the recurrence: at least float32.
torch::ScalarType state_dtype(torch::ScalarType t) {
  return t == torch::kDouble ? torch::kDouble : torch::kFloat;
}

torch::Tensor normal_init(torch::Tensor w, double variance) {
  torch::NoGradGuard no_grad;
  return w.normal_(0.0, std::sqrt(variance));
}

void zero_init(const torch::Tensor& b) {
  torch::NoGradGuard no_grad;
  if (b.defined()) b.zero_();
}

// Applies each block's Linear to its slice of the last dimension.
torch::Tensor block_diagonal(torch::nn::ModuleList& blocks,
                             const torch::Tensor& x) {
  const int64_t n = static_cast<int64_t>(blocks->size());
  const int64_t bw = x.size(-1) / n;
  std::vector<torch::Tensor> outs;
  outs.reserve(static_cast<size_t>(n));
  for (int64_t h = 0; h < n; ++h) {
    outs.push_back(
        blocks[h]->as<dp::LinearImpl>()->forward(x.narrow(-1, h * bw, bw)));
  }
  return torch::cat(outs, -1);
}

}  // namespace

namespace detail {

torch::Tensor linear_scan(const torch::Tensor& log_a, const torch::Tensor& x,
                          const torch::Tensor& reset, const torch::Tensor& h0,
                          int64_t chunk) {
  const int64_t batch = x.size(0), steps = x.size(1), dim = x.size(2);
  const auto dtype = state_dtype(x.scalar_type());
  const auto xs = x.to(dtype);
  const auto la = log_a.to(dtype).masked_fill(reset.unsqueeze(-1), 0.0);
  torch::Tensor h =
      h0.defined() ? h0.to(dtype) : torch::zeros({batch, dim}, xs.options());
  if (steps == 0) return xs;
  std::vector<torch::Tensor> outs;
  if (chunk <= 1) {
    const auto a = torch::exp(la).masked_fill(reset.unsqueeze(-1), 0.0);
    for (int64_t t = 0; t < steps; ++t) {
      h = a.select(1, t) * h + xs.select(1, t);
      outs.push_back(h);
    }
    return torch::stack(outs, 1);
  }
  for (int64_t t0 = 0; t0 < steps; t0 += chunk) {
    const int64_t c = std::min(chunk, steps - t0);
    const auto la_c = la.narrow(1, t0, c);
    const auto x_c = xs.narrow(1, t0, c);
    const auto seg = reset.narrow(1, t0, c).to(torch::kLong).cumsum(1);
    const auto cum = la_c.cumsum(1);  // [B, c, D]: log Π a over (t0, t]
    // W[t, s] = Π_{u=s+1..t} a_u for s ≤ t in the same segment, else 0.
    const auto diff = cum.unsqueeze(2) - cum.unsqueeze(1);  // [B, t, s, D]
    const auto causal =
        torch::ones({c, c}, seg.options().dtype(torch::kBool)).tril();
    const auto valid =
        causal.unsqueeze(0) & (seg.unsqueeze(2) == seg.unsqueeze(1));
    const auto weights =
        torch::exp(diff.masked_fill(valid.logical_not().unsqueeze(-1),
                                    -std::numeric_limits<double>::infinity()));
    auto y = torch::einsum("btsd,bsd->btd", {weights, x_c});
    // The carried state decays through the chunk until the first reset.
    const auto carry = torch::exp(cum) * (seg == 0).unsqueeze(-1).to(dtype);
    y = y + carry * h.unsqueeze(1);
    h = y.select(1, c - 1);
    outs.push_back(y);
  }
  return torch::cat(outs, 1);
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& pos) {
  const int64_t hd = x.size(-1);
  const int64_t half = hd / 2, quarter = hd / 4;
  const auto x_rope = x.narrow(-1, 0, half);
  const auto x_pass = x.narrow(-1, half, hd - half);
  const auto opts = x.options().dtype(state_dtype(x.scalar_type()));
  const auto freq = torch::arange(quarter, opts);
  const auto timescale =
      torch::pow(10000.0, 2.0 * freq / static_cast<double>(half));
  const auto angles = pos.to(opts.dtype()).unsqueeze(-1).unsqueeze(-1) /
                      timescale;  // [B, T, 1, quarter]
  const auto sin = torch::sin(angles).to(x.scalar_type());
  const auto cos = torch::cos(angles).to(x.scalar_type());
  const auto first = x_rope.narrow(-1, 0, quarter);
  const auto second = x_rope.narrow(-1, quarter, quarter);
  return torch::cat(
      {first * cos - second * sin, second * cos + first * sin, x_pass}, -1);
}

}  // namespace detail

// ---------------------------------------------------------------- RG-LRU

RgLruImpl::RgLruImpl(int64_t width_, int64_t num_blocks_)
    : width(width_), num_blocks(num_blocks_) {
  const int64_t bw = width / num_blocks;
  a_param = register_module("a_param",
                            dp::SoftplusScale(dp::ElementwiseOptions({width})));
  input_gate = register_module("input_gate", torch::nn::ModuleList());
  a_gate = register_module("a_gate", torch::nn::ModuleList());
  for (int64_t h = 0; h < num_blocks; ++h) {
    input_gate->push_back(dp::Linear(bw, bw));
    a_gate->push_back(dp::Linear(bw, bw));
  }
  reset_parameters();
}

void RgLruImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double bw = static_cast<double>(width / num_blocks);
  for (auto* list : {&input_gate, &a_gate}) {
    for (const auto& m : **list) {
      auto* l = m->as<dp::LinearImpl>();
      normal_init(l->weight, 1.0 / bw);
      zero_init(l->bias);
    }
  }
  // a = exp(−softplus(Λ)) uniform in radius² over [0.9², 0.999²]; Λ is the
  // inverse softplus of −log a (reference rnn_param_init).
  auto& p = a_param->param;
  p.uniform_(0.9 * 0.9 + 1e-8, 0.999 * 0.999 + 1e-8);
  p.log_().mul_(0.5).neg_().exp_().sub_(1.0).log_();
}

torch::Tensor RgLruImpl::forward(const torch::Tensor& x,
                                 const torch::Tensor& segment_pos,
                                 torch::Tensor* state, int64_t chunk) {
  const auto reset = segment_pos.eq(0);
  const auto gate_x = torch::sigmoid(block_diagonal(input_gate, x));
  const auto gate_a = torch::sigmoid(block_diagonal(a_gate, x));
  const auto log_a = a_param(-8.0 * gate_a);  // −8·rₜ·softplus(Λ)
  const auto a_square = torch::exp(2.0 * log_a);
  auto multiplier = sqrt_bound_derivative(1.0 - a_square);
  multiplier = torch::where(reset.unsqueeze(-1), torch::ones_like(multiplier),
                            multiplier);
  const auto normalized = x * gate_x * multiplier;
  const torch::Tensor h0 = state != nullptr ? *state : torch::Tensor();
  auto h = detail::linear_scan(log_a, normalized, reset, h0, chunk);
  if (state != nullptr) *state = h.select(1, h.size(1) - 1);
  return h.to(x.scalar_type());
}

// ------------------------------------------------------- recurrent block

RecurrentBlockImpl::RecurrentBlockImpl(const GriffinConfig& config)
    : conv_width(config.conv_width), scan_chunk(config.scan_chunk) {
  const int64_t w = config.width, l = config.effective_lru_width();
  linear_y = register_module("linear_y", dp::Linear(w, l));
  linear_x = register_module("linear_x", dp::Linear(w, l));
  linear_out = register_module("linear_out", dp::Linear(l, w));
  conv_1d = register_module(
      "conv_1d",
      dp::Conv1d(
          dp::Conv1dOptions(l, l, conv_width).groups(l).padding(dp::kCausal)));
  rg_lru = register_module("rg_lru", RgLru(l, config.num_heads));
  const double final_scale = 2.0 / static_cast<double>(config.num_blocks());
  normal_init(linear_y->weight, 1.0 / static_cast<double>(w));
  normal_init(linear_x->weight, 1.0 / static_cast<double>(w));
  normal_init(linear_out->weight, final_scale / static_cast<double>(l));
  normal_init(conv_1d->weight, 0.01 / static_cast<double>(conv_width));
  for (const auto& b :
       {linear_y->bias, linear_x->bias, linear_out->bias, conv_1d->bias}) {
    zero_init(b);
  }
}

torch::Tensor RecurrentBlockImpl::forward(const torch::Tensor& x,
                                          const torch::Tensor& segment_pos,
                                          BlockCache* cache) {
  const auto y = torch::gelu(linear_y(x), "tanh");
  auto u = linear_x(x);  // [B, T, L]
  if (cache != nullptr) {
    // Decoding: the last K−1 inputs are kept; w[:, 0, K−1] weighs x_t.
    const auto window = torch::cat({cache->conv.to(u.scalar_type()), u}, 1);
    const auto w = conv_1d->weight.squeeze(1).t();  // [K, L]
    auto conv = (window.narrow(1, window.size(1) - conv_width, conv_width) *
                 w.unsqueeze(0))
                    .sum(1, /*keepdim=*/true);
    if (conv_1d->bias.defined()) conv = conv + conv_1d->bias;
    cache->conv =
        window.narrow(1, window.size(1) - (conv_width - 1), conv_width - 1);
    u = conv;
  } else {
    const int64_t batch = u.size(0), steps = u.size(1), l = u.size(2);
    const bool later_starts =
        steps > 1 &&
        segment_pos.narrow(1, 1, steps - 1).eq(0).any().item<bool>();
    if (!later_starts) {
      u = conv_1d(u.transpose(1, 2)).transpose(1, 2);
    } else {
      // Documents must not see each other through the convolution: place
      // each document after K−1 zeros (index e(t) = t + (K−1)·#starts ≤ t),
      // convolve causally, and read the outputs back at e(t).
      const auto starts = segment_pos.eq(0).to(torch::kLong).cumsum(1);
      const auto index = torch::arange(steps, starts.options()).unsqueeze(0) +
                         (conv_width - 1) * starts;  // [B, T]
      const int64_t expanded = index.max().item<int64_t>() + 1;
      const auto gather_index = index.unsqueeze(-1).expand({batch, steps, l});
      const auto spread = torch::zeros({batch, expanded, l}, u.options())
                              .scatter(1, gather_index, u);
      const auto conv = conv_1d(spread.transpose(1, 2)).transpose(1, 2);
      u = conv.gather(1, gather_index);
    }
  }
  u = rg_lru(u, segment_pos, cache != nullptr ? &cache->rnn : nullptr,
             scan_chunk);
  return linear_out(u * y);
}

// ------------------------------------------------------- local attention

LocalAttentionBlockImpl::LocalAttentionBlockImpl(const GriffinConfig& config)
    : num_heads(config.num_heads),
      head_dim(config.head_dim()),
      window(config.attention_window) {
  const int64_t w = config.width;
  proj_q = register_module("proj_q",
                           dp::Linear(dp::LinearOptions(w, w).bias(false)));
  proj_k = register_module(
      "proj_k", dp::Linear(dp::LinearOptions(w, head_dim).bias(false)));
  proj_v = register_module(
      "proj_v", dp::Linear(dp::LinearOptions(w, head_dim).bias(false)));
  proj_final = register_module("proj_final", dp::Linear(w, w));
  const double final_scale = 2.0 / static_cast<double>(config.num_blocks());
  for (auto* l : {&proj_q, &proj_k, &proj_v}) {
    normal_init((*l)->weight, 1.0 / static_cast<double>(w));
  }
  normal_init(proj_final->weight, final_scale / static_cast<double>(w));
  zero_init(proj_final->bias);
}

torch::Tensor LocalAttentionBlockImpl::forward(const torch::Tensor& x,
                                               const torch::Tensor& segment_pos,
                                               BlockCache* cache,
                                               int64_t position) {
  const int64_t batch = x.size(0), steps = x.size(1);
  auto q = proj_q(x).view({batch, steps, num_heads, head_dim});
  auto k = proj_k(x).view({batch, steps, 1, head_dim});
  auto v = proj_v(x);  // [B, T, hd]
  q = detail::apply_rope(q, segment_pos);
  k = detail::apply_rope(k, segment_pos).squeeze(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  torch::Tensor probs, values;
  if (cache != nullptr) {
    // Decoding one token: the ring buffer holds the previous
    // min(position, window) keys, all inside the window.
    const int64_t n = std::min(position, window);
    const auto keys = torch::cat({cache->keys.narrow(1, 0, n), k}, 1);
    values = torch::cat({cache->values.narrow(1, 0, n), v}, 1);
    const auto logits = torch::einsum("bthd,bsd->bhts", {q, keys}) * scale;
    probs = torch::softmax(logits, -1);
    const int64_t slot = position % window;
    cache->keys.select(1, slot).copy_(k.select(1, 0));
    cache->values.select(1, slot).copy_(v.select(1, 0));
  } else {
    values = v;
    auto logits = torch::einsum("bthd,bsd->bhts", {q, k}) * scale;
    const auto t = torch::arange(steps, segment_pos.options());
    const auto diff = t.unsqueeze(1) - t.unsqueeze(0);  // [T(q), S(k)]
    const auto in_window = diff.ge(0) & diff.le(window);
    const auto seg = segment_pos.eq(0).to(torch::kLong).cumsum(1);
    const auto mask = in_window.unsqueeze(0) &
                      seg.unsqueeze(2).eq(seg.unsqueeze(1));  // [B, T, S]
    logits = logits.masked_fill(mask.logical_not().unsqueeze(1),
                                -std::numeric_limits<double>::infinity());
    probs = torch::softmax(logits, -1);
  }
  const auto encoded = torch::einsum("bhts,bsd->bthd", {probs, values})
                           .reshape({batch, steps, num_heads * head_dim});
  return proj_final(encoded);
}

// ------------------------------------------------------------------- MLP

MlpBlockImpl::MlpBlockImpl(int64_t width, int64_t expanded_width) {
  ffw_gate = register_module("ffw_gate", dp::Linear(width, expanded_width));
  ffw_up = register_module("ffw_up", dp::Linear(width, expanded_width));
  ffw_down = register_module("ffw_down", dp::Linear(expanded_width, width));
  normal_init(ffw_gate->weight, 1.0 / static_cast<double>(width));
  normal_init(ffw_up->weight, 1.0 / static_cast<double>(width));
  normal_init(ffw_down->weight, 1.0 / static_cast<double>(expanded_width));
  for (const auto& b : {ffw_gate->bias, ffw_up->bias, ffw_down->bias}) {
    zero_init(b);
  }
}

torch::Tensor MlpBlockImpl::forward(const torch::Tensor& x) {
  return ffw_down(torch::gelu(ffw_gate(x), "tanh") * ffw_up(x));
}

// -------------------------------------------------------- residual block

ResidualBlockImpl::ResidualBlockImpl(const GriffinConfig& config,
                                     TemporalBlockType type_)
    : type(type_) {
  temporal_pre_norm =
      register_module("temporal_pre_norm", dp::RMSNorm(config.width));
  if (type == TemporalBlockType::kRecurrent) {
    recurrent_block =
        register_module("recurrent_block", RecurrentBlock(config));
  } else {
    attention_block =
        register_module("attention_block", LocalAttentionBlock(config));
  }
  channel_pre_norm =
      register_module("channel_pre_norm", dp::RMSNorm(config.width));
  mlp_block = register_module(
      "mlp_block", MlpBlock(config.width, config.effective_mlp_width()));
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x,
                                         const torch::Tensor& segment_pos,
                                         BlockCache* cache, int64_t position) {
  const auto normed = temporal_pre_norm(x);
  const auto temporal =
      type == TemporalBlockType::kRecurrent
          ? recurrent_block(normed, segment_pos, cache)
          : attention_block(normed, segment_pos, cache, position);
  const auto residual = temporal + x;
  return mlp_block(channel_pre_norm(residual)) + residual;
}

}  // namespace dptrain::models
