// The dptrain command line: registers every subcommand, parses, and turns any
// exception from the library into one `error: ...` line and a non-zero exit.
#include <exception>
#include <iostream>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/train/runtime.h"

namespace dptrain::cli {
namespace {
GlobalOptions g_options;
}  // namespace

const GlobalOptions& global_options() { return g_options; }

}  // namespace dptrain::cli

int main(int argc, char** argv) {
  using namespace dptrain::cli;
  CLI::App app{kProgramDescription, "dptrain"};
  app.require_subcommand(1);
  app.set_version_flag("--version", dptrain::train::version_string());
  app.add_option("--threads", g_options.threads,
                 "intra-op threads (default: one per hardware thread)")
      ->check(CLI::NonNegativeNumber);
  app.parse_complete_callback([] {
    dptrain::train::configure_allocator();
    dptrain::train::set_num_threads(g_options.threads);
  });

  add_info_command(app);
  add_data_command(app);
  add_model_command(app);
  add_account_commands(app);
  add_report_command(app);
  add_launch_command(app);
  add_train_command(app);
  add_generate_command(app);
  add_bench_command(app);
  add_audit_command(app);
  add_diffusion_command(app);

  return parse_and_run(app, argc, argv);
}
