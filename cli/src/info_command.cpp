// `dptrain info`: what this build runs on (threads, BLAS, devices).
#include <iostream>

#include "commands.h"
#include "dptrain/train/runtime.h"

namespace dptrain::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "info", "Print the build, thread count, BLAS library and devices");
  cmd->callback([] { std::cout << dptrain::train::runtime_summary(); });
}

}  // namespace dptrain::cli
