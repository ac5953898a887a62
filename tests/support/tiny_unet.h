// The smallest class-conditional UNet the tests build: two levels of widths
// 4 and 6, one block each, attention at the lower level, two heads.
#pragma once

#include <cstdint>

#include "dptrain/models/unet.h"

namespace dptrain::test_support {

inline models::UNetConfig tiny_unet_config(std::int64_t image_size,
                                           std::int64_t in_channels,
                                           std::int64_t num_classes) {
  models::UNetConfig c;
  c.name = "tiny";
  c.image_size = image_size;
  c.in_channels = in_channels;
  c.num_classes = num_classes;
  c.channels = {4, 6};
  c.blocks_per_level = 1;
  c.attention_levels = {1};
  c.attention_heads = 2;
  c.embedding_dim = 6;
  c.norm_groups = 2;
  return c;
}

}  // namespace dptrain::test_support
