// Data-parallel DP-SGD over torch's c10d: where a process stands in a run
// (torchrun's environment variables), the collectives the private loop
// needs, and how a logical batch is shared between the ranks.
//
// The privacy argument, as the loop implements it:
//  - Every rank draws the same global batch from one sampler key (rank 0's,
//    shared at start-up), so the union of the ranks' batches is exactly the
//    Poisson(q) batch of a one-process run over the whole data set, whatever
//    the number of ranks; rank r takes positions r, r + W, r + 2W, ... of it,
//    so no example is seen by two ranks.
//  - Each rank clips its own examples; the clipped sums are summed by an
//    all-reduce. Rank 0 alone adds N(0, σ²C²) to its part before the sum and
//    the others add nothing, so the summed gradient carries exactly one
//    Gaussian draw: the mechanism the accountant composes, once per step.
//  - Every rank divides by the same public expected batch size q·N.
//  - Rank 0 alone writes the log, metrics, the ledger and checkpoints.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dptrain/dp/mechanism/secure_random.h"

namespace dptrain::train {

/// Where this process stands in a run, as torchrun describes it.
struct DistributedEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool distributed() const { return world_size > 1; }
};

/// Reads WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Without
/// WORLD_SIZE, or with WORLD_SIZE=1: one process. Throws
/// std::invalid_argument naming the variable and its value when one is not a
/// number in range, or when WORLD_SIZE > 1 and RANK is missing.
DistributedEnv distributed_env_from_environment();

/// The collectives of a data-parallel run. Every rank makes the same calls in
/// the same order; a call that does not complete within the communicator's
/// timeout (a rank died or hangs) throws std::runtime_error.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// Sums each tensor over the ranks, in place, on every rank.
  virtual void all_reduce_sum(std::vector<at::Tensor>& tensors) = 0;
  /// Returns once every rank has called it.
  virtual void barrier() = 0;
};

/// Joins the run over c10d: a TCPStore at MASTER_ADDR:MASTER_PORT (served by
/// rank 0) and a Gloo process group (CPU tensors). GLOO_SOCKET_IFNAME picks
/// the network interface as for torchrun. Collectives wait at most
/// `timeout`. Throws std::runtime_error naming the address when the ranks do
/// not meet within `timeout`.
std::unique_ptr<Communicator> connect_gloo(const DistributedEnv& env,
                                           std::chrono::milliseconds timeout);

/// The communicator of this process's data-parallel run (null: one
/// process). `dptrain train` sets it from the environment; every PrivateLoop
/// built afterwards is a rank of that run.
void set_process_communicator(std::shared_ptr<Communicator> communicator);
std::shared_ptr<Communicator> process_communicator();

/// The part of a global batch that rank `rank` of `world_size` computes:
/// positions rank, rank + world_size, ... (disjoint, their union the batch).
std::vector<std::int64_t> rank_share(const std::vector<std::int64_t>& batch,
                                     int rank, int world_size);

/// Rank 0's key on every rank (an all-reduce in which the others contribute
/// zeros).
dp::ChaChaKey share_key(Communicator& communicator, const dp::ChaChaKey& key);

/// Sums the .grad of `parameters` over the ranks in place (one all-reduce per
/// dtype and device; missing grads of parameters that require grad become
/// zeros first, so that a rank with an empty batch still joins).
void all_reduce_gradients(Communicator& communicator,
                          const std::vector<at::Tensor>& parameters);

}  // namespace dptrain::train
