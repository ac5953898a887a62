// What NF-ResNet and NFNet share beyond nf_common.h, private to models/src:
// the option checks both make and the signal-propagation schedule of their
// blocks (Brock, De & Smith 2021).
#pragma once

#include <torch/nn/modules/container/modulelist.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dptrain::models::detail {

/// Throws std::invalid_argument("<model>: <what>").
[[noreturn]] void nf_fail(const std::string& model, const std::string& what);

/// Throws unless depths and widths have one entry for each of the 4 stages.
void check_nf_stage_lists(const std::string& model,
                          const std::vector<int64_t>& depths,
                          const std::vector<int64_t>& widths);

/// Throws unless num_classes, in_channels >= 1, and stochastic_depth and
/// dropout are in [0, 1), in that order.
void check_nf_head(const std::string& model, int64_t num_classes,
                   int64_t in_channels, double stochastic_depth,
                   double dropout);

/// One residual block of an NF network, in order.
struct NfBlockPlan {
  int64_t in_channels, out_channels, stride;
  double beta;  ///< 1 / expected std of the block's input
  double stochastic_depth_rate;
};

/// The blocks of 4 stages of depths[s] blocks of width widths[s], after a
/// stem of `stem_channels` outputs: the first block of stages 1 … 3 has
/// stride 2; block i of n has stochastic-depth rate stochastic_depth · i / n;
/// the expected variance resets to 1 at each stage's first block and grows
/// by alpha² after each block, and β is 1 / its square root.
std::vector<NfBlockPlan> nf_block_plan(int64_t stem_channels,
                                       const std::vector<int64_t>& depths,
                                       const std::vector<int64_t>& widths,
                                       double alpha, double stochastic_depth);

/// Builds the blocks of nf_block_plan(stem_channels, options…) as
/// Block(in, out, stride, β, rate, options), registered in `list` (module
/// paths blocks.i) and kept in `blocks`; returns the last block's channels.
template <typename Block, typename Options>
int64_t build_nf_blocks(int64_t stem_channels, const Options& options,
                        torch::nn::ModuleListImpl& list,
                        std::vector<Block>& blocks) {
  int64_t channels = stem_channels;
  for (const auto& p :
       nf_block_plan(stem_channels, options.depths(), options.widths(),
                     options.alpha(), options.stochastic_depth())) {
    Block block(p.in_channels, p.out_channels, p.stride, p.beta,
                p.stochastic_depth_rate, options);
    list.push_back(block);
    blocks.push_back(block);
    channels = p.out_channels;
  }
  return channels;
}

}  // namespace dptrain::models::detail
