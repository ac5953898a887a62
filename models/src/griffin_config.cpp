#include "dptrain/models/griffin_config.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace dptrain::models {
namespace {
void require(bool ok, const std::string& field, const std::string& rule,
             const std::string& value) {
  if (!ok) {
    throw std::invalid_argument("GriffinConfig." + field + " must " + rule +
                                ", got " + value);
  }
}
bool has_attention(const GriffinConfig& c) {
  for (auto t : c.block_types) {
    if (t == TemporalBlockType::kAttention) return true;
  }
  return false;
}
}  // namespace

void GriffinConfig::validate() const {
  require(vocab_size >= 1, "vocab_size", "be >= 1", std::to_string(vocab_size));
  require(width >= 1, "width", "be >= 1", std::to_string(width));
  require(!block_types.empty(), "block_types", "not be empty", "0 blocks");
  require(num_heads >= 1 && width % num_heads == 0, "num_heads",
          "be >= 1 and divide width (" + std::to_string(width) + ")",
          std::to_string(num_heads));
  require(lru_width >= 0, "lru_width", "be >= 0 (0: width)",
          std::to_string(lru_width));
  require(effective_lru_width() % num_heads == 0, "lru_width",
          "be divisible by num_heads (" + std::to_string(num_heads) + ")",
          std::to_string(effective_lru_width()));
  require(mlp_expanded_width >= 0, "mlp_expanded_width", "be >= 0 (0: 3·width)",
          std::to_string(mlp_expanded_width));
  require(attention_window >= 1, "attention_window", "be >= 1",
          std::to_string(attention_window));
  if (has_attention(*this)) {
    require(head_dim() % 4 == 0, "num_heads",
            "give a head_dim (width/num_heads) divisible by 4 for RoPE",
            std::to_string(num_heads) + " (head_dim " +
                std::to_string(head_dim()) + ")");
  }
  require(conv_width >= 1, "conv_width", "be >= 1", std::to_string(conv_width));
  require(std::isfinite(logits_soft_cap) && logits_soft_cap >= 0,
          "logits_soft_cap", "be finite and >= 0 (0: no cap)",
          std::to_string(logits_soft_cap));
  require(scan_chunk >= 1, "scan_chunk", "be >= 1", std::to_string(scan_chunk));
}

std::vector<TemporalBlockType> griffin_block_pattern(int64_t num_blocks) {
  std::vector<TemporalBlockType> out;
  for (int64_t i = 0; i < num_blocks; ++i) {
    out.push_back(i % 3 == 2 ? TemporalBlockType::kAttention
                             : TemporalBlockType::kRecurrent);
  }
  return out;
}

std::vector<TemporalBlockType> hawk_block_pattern(int64_t num_blocks) {
  return std::vector<TemporalBlockType>(static_cast<size_t>(num_blocks),
                                        TemporalBlockType::kRecurrent);
}

std::vector<std::string> griffin_config_names() {
  return {"griffin-tiny", "hawk-tiny", "griffin-25m", "hawk-25m",
          "recurrentgemma-2b"};
}

GriffinConfig griffin_config(const std::string& name) {
  GriffinConfig c;
  c.name = name;
  if (name == "griffin-tiny" || name == "hawk-tiny") {
    c.width = 16;
    c.num_heads = 2;
    c.attention_window = 4;
    c.scan_chunk = 4;
    c.block_types = name == "griffin-tiny" ? griffin_block_pattern(3)
                                           : hawk_block_pattern(2);
  } else if (name == "griffin-25m" || name == "hawk-25m") {
    c.width = 512;
    c.num_heads = 8;
    c.attention_window = 512;
    c.block_types = name == "griffin-25m" ? griffin_block_pattern(8)
                                          : hawk_block_pattern(8);
  } else if (name == "recurrentgemma-2b") {
    c.vocab_size = 256000;
    c.width = 2560;
    c.num_heads = 10;
    c.mlp_expanded_width = 7680;
    c.attention_window = 2048;
    c.block_types = griffin_block_pattern(26);
  } else {
    std::string names;
    for (const auto& n : griffin_config_names()) {
      names += (names.empty() ? "" : ", ") + n;
    }
    throw std::invalid_argument("unknown Griffin model '" + name +
                                "'; known: " + names);
  }
  c.validate();
  return c;
}

int64_t count_parameters(const GriffinConfig& c, bool include_embeddings) {
  c.validate();
  const int64_t w = c.width, l = c.effective_lru_width(),
                e = c.effective_mlp_width(), h = c.num_heads, k = c.conv_width,
                hd = c.head_dim();
  const int64_t norms = 2 * w;
  const int64_t mlp = 2 * (w * e + e) + (e * w + w);
  const int64_t bw = l / h;
  const int64_t rg_lru = l + 2 * (h * bw * bw + l);
  const int64_t recurrent =
      2 * (w * l + l) + (l * w + w) + (k * l + l) + rg_lru;
  const int64_t attention = w * w + 2 * w * hd + (w * w + w);
  int64_t total = w;  // final norm
  for (auto t : c.block_types) {
    total += norms + mlp +
             (t == TemporalBlockType::kRecurrent ? recurrent : attention);
  }
  if (include_embeddings) total += c.vocab_size * w;
  return total;
}

}  // namespace dptrain::models
