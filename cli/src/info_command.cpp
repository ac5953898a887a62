// `dptrain info`: what this build runs on (threads, BLAS, devices).
#include <iostream>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/train/runtime.h"

namespace dptrain::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", summary_of("info"));
  cmd->callback([] { std::cout << dptrain::train::runtime_summary(); });
}

}  // namespace dptrain::cli
