// `dptrain` as users call it: a launcher that does not link LibTorch, whose
// shared libraries take seconds to load. It answers `account`, `calibrate`,
// `report`, `--help` and `--version` itself, in milliseconds, and runs every
// other command by executing dptrain-torch (built and installed beside it) with
// the same arguments.
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "command_summaries.h"
#include "commands.h"
#include "version.h"

namespace {

// The top-level subcommand named on the command line ("" when none): the
// first argument that is neither a flag nor the value of --threads.
std::string subcommand_of(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads") {
      ++i;
      continue;
    }
    if (!arg.empty() && arg[0] == '-') continue;
    return arg;
  }
  return "";
}

bool runs_here(const std::string& name) {
  for (const auto& c : dptrain::cli::kCommandSummaries) {
    if (name == c.name) return !c.needs_torch;
  }
  return false;  // unknown: dptrain-torch reports it
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dptrain::cli;
  const std::string subcommand = subcommand_of(argc, argv);
  if (!subcommand.empty() && !runs_here(subcommand)) {
    const std::string path = program_beside_this_one("dptrain-torch");
    std::vector<char*> args(argv, argv + argc);
    args.push_back(nullptr);
    execv(path.c_str(), args.data());
    std::cerr << "error: cannot run " << path << " (it runs `dptrain "
              << subcommand << "`): " << std::strerror(errno) << "\n";
    return 127;
  }
  CLI::App app{kProgramDescription, "dptrain"};
  app.require_subcommand(1);
  app.set_version_flag("--version", DPTRAIN_VERSION_STRING);
  int threads = 0;  // accepted as dptrain-torch does; the accountant needs none
  app.add_option("--threads", threads,
                 "intra-op threads (default: one per hardware thread)")
      ->check(CLI::NonNegativeNumber);
  add_account_commands(app);
  add_report_command(app);
  add_launch_command(app);
  // Listed for --help; `dptrain NAME` never reaches this parser.
  for (const auto& c : kCommandSummaries) {
    if (c.needs_torch) app.add_subcommand(c.name, c.summary);
  }
  return parse_and_run(app, argc, argv);
}
