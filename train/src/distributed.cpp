#include "dptrain/train/distributed.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

namespace dptrain::train {
namespace {

// An integer environment variable in [lo, hi], or `fallback` when unset.
int env_int(const char* name, int fallback, int lo, int hi) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi) {
    throw std::invalid_argument(std::string("environment variable ") + name +
                                "='" + text + "': expected an integer in [" +
                                std::to_string(lo) + ", " + std::to_string(hi) +
                                "]");
  }
  return static_cast<int>(value);
}

// LibTorch 2.x's TCPStore defaults to a libuv server, which Debian's build
// may lack; the classic server is in every version.
template <typename Options>
auto use_classic_store(Options& o, int)
    -> decltype(o.useLibUV = false, void()) {
  o.useLibUV = false;
}
template <typename Options>
void use_classic_store(Options&, long) {}

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const DistributedEnv& env, std::chrono::milliseconds timeout)
      : rank_(env.rank), world_size_(env.world_size), timeout_(timeout) {
    const std::string where =
        env.master_addr + ":" + std::to_string(env.master_port);
    try {
      c10d::TCPStoreOptions store_options;
      store_options.port = static_cast<std::uint16_t>(env.master_port);
      store_options.isServer = env.rank == 0;
      store_options.numWorkers = static_cast<std::size_t>(env.world_size);
      store_options.waitWorkers = true;
      store_options.timeout = timeout;
      use_classic_store(store_options, 0);
      auto store =
          c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
        options->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (env.master_addr == "127.0.0.1" ||
                 env.master_addr == "localhost") {
        options->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        options->devices.push_back(
            c10d::ProcessGroupGloo::createDefaultDevice());
      }
      group_ = c10::make_intrusive<c10d::ProcessGroupGloo>(
          store, env.rank, env.world_size, options);
    } catch (const std::exception& e) {
      throw std::runtime_error(
          "rank " + std::to_string(env.rank) + " of " +
          std::to_string(env.world_size) + ": cannot join the run at " + where +
          " (MASTER_ADDR:MASTER_PORT) within " +
          std::to_string(timeout.count() / 1000) + " s: " + first_line(e));
    }
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }

  void all_reduce_sum(std::vector<at::Tensor>& tensors) override {
    run("all-reduce", [&] {
      c10d::AllreduceOptions options;
      options.reduceOp = c10d::ReduceOp::SUM;
      return group_->allreduce(tensors, options);
    });
  }

  void barrier() override {
    run("barrier", [&] { return group_->barrier(); });
  }

 private:
  static std::string first_line(const std::exception& e) {
    const std::string what = e.what();
    return what.substr(0, what.find('\n'));
  }

  template <typename Start>
  void run(const char* what, Start start) {
    try {
      auto work = start();
      work->wait(timeout_);
    } catch (const std::exception& e) {
      throw std::runtime_error(
          std::string("rank ") + std::to_string(rank_) + " of " +
          std::to_string(world_size_) + ": the " + what +
          " failed (another rank died, hung or left; timeout " +
          std::to_string(timeout_.count() / 1000) + " s): " + first_line(e));
    }
  }

  int rank_;
  int world_size_;
  std::chrono::milliseconds timeout_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
};

std::shared_ptr<Communicator>& the_process_communicator() {
  static std::shared_ptr<Communicator> communicator;
  return communicator;
}

}  // namespace

void set_process_communicator(std::shared_ptr<Communicator> communicator) {
  the_process_communicator() = std::move(communicator);
}

std::shared_ptr<Communicator> process_communicator() {
  return the_process_communicator();
}

DistributedEnv distributed_env_from_environment() {
  DistributedEnv env;
  env.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  if (env.world_size == 1) return env;
  if (std::getenv("RANK") == nullptr) {
    throw std::invalid_argument(
        "environment variable WORLD_SIZE=" + std::to_string(env.world_size) +
        " but RANK is not set");
  }
  env.rank = env_int("RANK", 0, 0, env.world_size - 1);
  env.local_rank = env_int("LOCAL_RANK", 0, 0, env.world_size - 1);
  env.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) {
    env.master_addr = addr;
  }
  return env;
}

std::unique_ptr<Communicator> connect_gloo(const DistributedEnv& env,
                                           std::chrono::milliseconds timeout) {
  return std::make_unique<GlooCommunicator>(env, timeout);
}

std::vector<std::int64_t> rank_share(const std::vector<std::int64_t>& batch,
                                     int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw std::invalid_argument("rank_share: rank " + std::to_string(rank) +
                                " of " + std::to_string(world_size));
  }
  std::vector<std::int64_t> share;
  share.reserve(batch.size() / static_cast<std::size_t>(world_size) + 1);
  for (std::size_t j = static_cast<std::size_t>(rank); j < batch.size();
       j += static_cast<std::size_t>(world_size)) {
    share.push_back(batch[j]);
  }
  return share;
}

dp::ChaChaKey share_key(Communicator& communicator, const dp::ChaChaKey& key) {
  auto words = torch::zeros({static_cast<int64_t>(key.size())}, torch::kInt64);
  if (communicator.rank() == 0) {
    for (std::size_t i = 0; i < key.size(); ++i) {
      words[static_cast<int64_t>(i)] = static_cast<int64_t>(key[i]);
    }
  }
  std::vector<at::Tensor> tensors{words};
  communicator.all_reduce_sum(tensors);
  dp::ChaChaKey shared{};
  for (std::size_t i = 0; i < key.size(); ++i) {
    shared[i] =
        static_cast<uint32_t>(words[static_cast<int64_t>(i)].item<int64_t>());
  }
  return shared;
}

void all_reduce_gradients(Communicator& communicator,
                          const std::vector<at::Tensor>& parameters) {
  // One flat buffer per (dtype, device): a collective per tensor would pay
  // Gloo's latency hundreds of times a step.
  std::map<std::pair<int, std::string>, std::vector<at::Tensor>> groups;
  for (const auto& p : parameters) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) {
      p.mutable_grad() = torch::zeros_like(p);
    }
    groups[{static_cast<int>(p.scalar_type()), p.device().str()}].push_back(
        p.grad());
  }
  for (auto& entry : groups) {
    auto& grads = entry.second;
    std::vector<at::Tensor> flat_views;
    flat_views.reserve(grads.size());
    for (const auto& g : grads) flat_views.push_back(g.reshape({-1}));
    // Gloo reduces CPU tensors; a GPU gradient goes through the host.
    std::vector<at::Tensor> buffer{torch::cat(flat_views).to(torch::kCPU)};
    communicator.all_reduce_sum(buffer);
    const at::Tensor summed = buffer[0].to(grads.front().device());
    int64_t offset = 0;
    for (auto& g : grads) {
      const int64_t n = g.numel();
      g.copy_(summed.narrow(0, offset, n).view(g.sizes()));
      offset += n;
    }
  }
}

}  // namespace dptrain::train
