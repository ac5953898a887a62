#pragma once
/// Configurations of the Griffin / Hawk language models (De et al. 2024,
/// "Griffin: Mixing Gated Linear Recurrences with Local Attention"; Botev et
/// al. 2024, RecurrentGemma) and their parameter counts, computed from the
/// configuration without allocating the model.

#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::models {

/// The temporal-mixing block of a residual block.
enum class TemporalBlockType {
  kRecurrent,  ///< GELU(Linear_y x) ⊙ RG-LRU(Conv1D(Linear_x x)) → Linear_out
  kAttention,  ///< local multi-query attention
};

/// Hyper-parameters of a Griffin / Hawk model.
struct GriffinConfig {
  std::string name = "custom";
  int64_t vocab_size = 256;
  int64_t width = 64;
  /// Temporal block of each residual block, in order (its size is the depth).
  std::vector<TemporalBlockType> block_types;
  /// Attention heads (head_dim = width / num_heads) and RG-LRU gate blocks.
  int64_t num_heads = 2;
  /// RG-LRU width; 0 means `width`.
  int64_t lru_width = 0;
  /// MLP hidden width; 0 means 3·width.
  int64_t mlp_expanded_width = 0;
  /// Local attention: a query at position t sees keys t−window … t.
  int64_t attention_window = 2048;
  /// Width of the causal depthwise Conv1D.
  int64_t conv_width = 4;
  /// Logits are capped as c·tanh(x/c); 0 disables the cap.
  double logits_soft_cap = 30.0;
  /// Input embeddings are multiplied by √width.
  bool scale_embeddings = true;
  /// Time steps per chunk of the training scan (≥ 1; 1 is the plain
  /// sequential recurrence).
  int64_t scan_chunk = 16;

  int64_t num_blocks() const {
    return static_cast<int64_t>(block_types.size());
  }
  int64_t effective_lru_width() const {
    return lru_width > 0 ? lru_width : width;
  }
  int64_t effective_mlp_width() const {
    return mlp_expanded_width > 0 ? mlp_expanded_width : 3 * width;
  }
  int64_t head_dim() const { return width / num_heads; }
  /// Throws std::invalid_argument naming the first bad field and its value.
  void validate() const;
};

/// Block pattern (recurrent, recurrent, attention) repeated: Griffin.
std::vector<TemporalBlockType> griffin_block_pattern(int64_t num_blocks);
/// All recurrent: Hawk.
std::vector<TemporalBlockType> hawk_block_pattern(int64_t num_blocks);

/// Named configurations: "griffin-tiny", "hawk-tiny" (tests, width 16),
/// "griffin-25m" (25,369,088 parameters), "hawk-25m" (25,903,616; width 512,
/// 8 blocks, byte vocabulary) and
/// "recurrentgemma-2b" (vocab 256,000, width 2560, 26 blocks, 10 heads,
/// window 2048, MLP 7680). Throws std::invalid_argument listing the names.
GriffinConfig griffin_config(const std::string& name);
/// The names griffin_config accepts.
std::vector<std::string> griffin_config_names();

/// Number of parameters of a model with this configuration, counting the
/// tied embedding once; without it if !include_embeddings. recurrentgemma-2b:
/// 2,682,862,080 (2,027,502,080 without embeddings). Validates the config.
int64_t count_parameters(const GriffinConfig& config,
                         bool include_embeddings = true);

}  // namespace dptrain::models
