// `dptrain launch --nproc N -- COMMAND ...`: N local ranks of a data-parallel
// run, each `dptrain COMMAND ...` with torchrun's environment variables set,
// for users without Python. When one rank fails, the others are stopped and
// the launcher exits with that rank's status.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "command_summaries.h"
#include "commands.h"

namespace dptrain::cli {
namespace {

struct LaunchFlags {
  int nproc = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int threads_per_rank = 0;
  std::vector<std::string> command;
};

volatile sig_atomic_t g_stop_signal = 0;
void remember_signal(int signal) { g_stop_signal = signal; }

std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("was killed by signal ") +
           std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "stopped";
}

int run_launch(const LaunchFlags& f) {
  if (f.command.empty()) {
    throw std::invalid_argument(
        "launch: give the command after --, e.g. dptrain launch --nproc 2 -- "
        "train --dataset fashion-mnist ...");
  }
  if (f.node_rank >= f.nnodes) {
    throw std::invalid_argument(
        "launch: --node-rank " + std::to_string(f.node_rank) +
        " must be < --nnodes " + std::to_string(f.nnodes));
  }
  const int world = f.nproc * f.nnodes;
  const unsigned hardware = std::max(1U, std::thread::hardware_concurrency());
  const int threads = f.threads_per_rank > 0
                          ? f.threads_per_rank
                          : std::max(1, static_cast<int>(hardware) / f.nproc);
  const bool has_threads = std::find(f.command.begin(), f.command.end(),
                                     "--threads") != f.command.end();
  // Ranks run through the launcher, whichever binary runs this.
  const std::string program = program_beside_this_one("dptrain");

  struct sigaction action {};
  action.sa_handler = remember_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  std::vector<pid_t> pids(static_cast<std::size_t>(f.nproc), -1);
  for (int local = 0; local < f.nproc; ++local) {
    const int rank = f.node_rank * f.nproc + local;
    const pid_t pid = fork();
    if (pid < 0) {
      throw std::runtime_error(std::string("launch: fork failed: ") +
                               std::strerror(errno));
    }
    if (pid == 0) {
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(f.nproc).c_str(), 1);
      setenv("MASTER_ADDR", f.master_addr.c_str(), 1);
      setenv("MASTER_PORT", std::to_string(f.master_port).c_str(), 1);
      std::vector<std::string> args{program};
      if (!has_threads) {
        args.push_back("--threads");
        args.push_back(std::to_string(threads));
      }
      args.insert(args.end(), f.command.begin(), f.command.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(program.c_str(), argv.data());
      std::cerr << "dptrain launch: cannot run " << program << ": "
                << std::strerror(errno) << "\n";
      _exit(127);
    }
    pids[static_cast<std::size_t>(local)] = pid;
  }
  std::cerr << "dptrain launch: ranks " << f.node_rank * f.nproc << ".."
            << f.node_rank * f.nproc + f.nproc - 1 << " of " << world
            << " started (" << threads << " threads each; MASTER_ADDR "
            << f.master_addr << ":" << f.master_port << ")\n";

  int result = 0;
  int running = f.nproc;
  // After a rank fails, the others stop in three stages: first they get
  // kGrace to fail on their own (the next all-reduce does, saying why),
  // then SIGTERM, then after kTerm SIGKILL. A stopped (hung under SIGSTOP,
  // or traced) rank would hold SIGTERM until continued: continue it too.
  enum class Stage { kRunning, kGrace, kTerm, kKill };
  constexpr auto kGrace = std::chrono::seconds(10);
  constexpr auto kTerm = std::chrono::seconds(30);
  Stage stage = Stage::kRunning;
  auto next_stage_at = std::chrono::steady_clock::time_point::max();
  auto signal_others = [&](int signal) {
    for (pid_t pid : pids) {
      if (pid > 0) {
        kill(pid, signal);
        kill(pid, SIGCONT);
      }
    }
  };
  auto enter = [&](Stage next) {
    stage = next;
    const auto now = std::chrono::steady_clock::now();
    if (next == Stage::kGrace) next_stage_at = now + kGrace;
    if (next == Stage::kTerm) {
      signal_others(SIGTERM);
      next_stage_at = now + kTerm;
    }
    if (next == Stage::kKill) {
      signal_others(SIGKILL);
      next_stage_at = std::chrono::steady_clock::time_point::max();
    }
  };
  while (running > 0) {
    if (g_stop_signal != 0 && result == 0) {
      std::cerr << "dptrain launch: " << strsignal(g_stop_signal)
                << "; stopping every rank\n";
      result = 128 + g_stop_signal;
      enter(Stage::kTerm);
    }
    if (std::chrono::steady_clock::now() > next_stage_at) {
      enter(stage == Stage::kGrace ? Stage::kTerm : Stage::kKill);
    }
    int status = 0;
    const pid_t done = waitpid(-1, &status, WNOHANG);
    if (done <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    const auto it = std::find(pids.begin(), pids.end(), done);
    if (it == pids.end()) continue;
    const int local = static_cast<int>(it - pids.begin());
    *it = -1;
    --running;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && stage == Stage::kRunning) {
      std::cerr << "dptrain launch: rank " << f.node_rank * f.nproc + local
                << " (pid " << done << ") " << describe_status(status)
                << "; stopping the other ranks\n";
      result = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      enter(Stage::kGrace);
    }
  }
  return result;
}

}  // namespace

void add_launch_command(CLI::App& app) {
  auto flags = std::make_shared<LaunchFlags>();
  auto* cmd = app.add_subcommand("launch", summary_of("launch"));
  cmd->add_option("--nproc", flags->nproc, "ranks on this host [default 1]")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--nnodes", flags->nnodes, "hosts in the run [default 1]")
      ->check(CLI::Range(1, 1 << 16));
  cmd->add_option("--node-rank", flags->node_rank,
                  "this host's index in [0, --nnodes) [default 0]")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--master-addr", flags->master_addr,
                  "address of the host of rank 0, reachable from every host "
                  "[default 127.0.0.1]");
  cmd->add_option(
         "--master-port", flags->master_port,
         "free TCP port on that host for the rendezvous store [default 29500]")
      ->check(CLI::Range(1, 65535));
  cmd->add_option(
         "--threads-per-rank", flags->threads_per_rank,
         "intra-op threads of each rank (default: hardware threads / --nproc)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("command", flags->command,
                  "the dptrain command each rank runs, after --")
      ->required();
  cmd->callback([flags] {
    const int code = run_launch(*flags);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace dptrain::cli
