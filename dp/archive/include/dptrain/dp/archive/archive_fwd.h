#pragma once

// Forward declarations of LibTorch's checkpoint archives, for headers that
// only name them in save()/load() signatures (as <iosfwd> does for streams).

namespace torch::serialize {
class InputArchive;
class OutputArchive;
}  // namespace torch::serialize
