// Checkpoint round trips for tests: save into a LibTorch archive, serialise
// to bytes, read back and load — what a checkpoint file does, in memory.
#pragma once

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <sstream>

namespace dptrain::test_support {

/// Calls `save(OutputArchive&)`, serialises the archive to bytes, reads them
/// into an InputArchive and calls `load(InputArchive&)` with it.
template <typename Save, typename Load>
void round_trip(Save&& save, Load&& load) {
  torch::serialize::OutputArchive out;
  save(out);
  std::stringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  in.load_from(bytes);
  load(in);
}

}  // namespace dptrain::test_support
