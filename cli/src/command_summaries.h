// The one-line description of the `dptrain` program and of each top-level
// subcommand. dptrain-torch registers its subcommands with these texts, and
// the launcher (cli/launcher) lists them in its --help without loading
// LibTorch: one text, two binaries.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace dptrain::cli {

inline constexpr const char* kProgramDescription =
    "dptrain: differentially private training of deep networks on LibTorch.\n"
    "Privacy unit: one training example (train --task lm: one sequence of "
    "--sequence-length bytes); adjacency: add/remove one unit.";

struct CommandSummary {
  const char* name;
  const char* summary;
  bool needs_torch;  ///< false: the launcher runs it itself
};

inline constexpr CommandSummary kCommandSummaries[] = {
    {"info", "Print the build, thread count, BLAS library and devices", true},
    {"data", "Inspect data sets, convert image folders and CSV lists to HDF5",
     true},
    {"model", "Describe the built-in models", true},
    {"account",
     "Privacy (epsilon) of DP-SGD: Poisson-sampled Gaussian, composed over "
     "steps. Adjacency: add/remove one example.",
     false},
    {"calibrate",
     "Smallest noise multiplier whose epsilon is at most the target (RDP "
     "epsilon, or the PRV upper bound). Adjacency: add/remove one example.",
     false},
    {"report",
     "One self-contained HTML page of a run (inline SVG, no script, no "
     "network): epsilon and accuracy/loss against steps, accuracy against "
     "epsilon, per-class and per-group accuracy, the privacy statement, "
     "sample grids",
     false},
    {"train",
     "Train a model with DP-SGD. Give --target-epsilon (noise is calibrated) "
     "or --noise-multiplier (epsilon is reported). Privacy unit: one example "
     "(--task lm: one sequence of --sequence-length bytes); adjacency: "
     "add/remove one unit; Poisson sampling.",
     true},
    {"generate",
     "Continue --prompt with the Griffin / Hawk model of a --task lm weights "
     "file (or checkpoint); prints the prompt followed by the generated "
     "bytes.",
     true},
    {"diffusion",
     "Diffusion models: non-private pre-training on public images, private "
     "fine-tuning (DP-SGD; privacy unit: one example with its K noise "
     "draws), sampling synthetic data sets, and evaluating them (downstream "
     "accuracy, FID).",
     true},
    {"launch",
     "Start N local ranks of a data-parallel run (torchrun's environment: "
     "RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): dptrain launch "
     "--nproc 2 -- train ...; on several hosts, the same command on each with "
     "--nnodes, --node-rank and --master-addr",
     false},
    {"bench", "Measure the cost of privacy", true},
    {"audit",
     "Empirical privacy audit in one run: trains a small MLP on synthetic "
     "data with M white-box Dirac canaries (each included with probability "
     "1/2) through the real private loop, and prints the accountant's epsilon "
     "beside the audited lower bound. Exits 2 when the lower bound exceeds "
     "the claim.",
     true},
};

/// The summary of top-level subcommand `name`; std::logic_error for a name
/// not in the table (a programming error).
inline const char* summary_of(std::string_view name) {
  for (const auto& c : kCommandSummaries) {
    if (name == c.name) return c.summary;
  }
  throw std::logic_error("no summary for the subcommand '" + std::string(name) +
                         "'");
}

}  // namespace dptrain::cli
