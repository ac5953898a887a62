// Subcommands of the `dptrain` program. Each add_*_command registers one
// subcommand (its flags and a callback that calls the library and prints).
#pragma once

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <climits>
#include <exception>
#include <iostream>
#include <string>

namespace dptrain::cli {

/// Global settings shared by every subcommand, filled by main() before the
/// subcommand's callback runs.
struct GlobalOptions {
  int threads = 0;  ///< intra-op threads; 0 = one per hardware thread
};

/// The options main() parsed; valid inside subcommand callbacks.
const GlobalOptions& global_options();

/// Parses and runs `app`; any exception from the library becomes one
/// `error: ...` line on standard error. Returns the exit status.
inline int parse_and_run(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

/// The program `name` in the folder of this executable (dptrain and
/// dptrain-torch are built and installed side by side); `name` alone when
/// /proc/self/exe cannot be read.
inline std::string program_beside_this_one(const std::string& name) {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return name;
  self[n] = '\0';
  const std::string path(self);
  return path.substr(0, path.rfind('/') + 1) + name;
}

void add_info_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_model_command(CLI::App& app);     // model info, model list
void add_account_commands(CLI::App& app);  // account, calibrate
void add_report_command(CLI::App& app);    // torch-free too
void add_launch_command(CLI::App& app);    // torch-free: starts ranks
void add_train_command(CLI::App& app);
void add_generate_command(CLI::App& app);   // text from an LM checkpoint
void add_bench_command(CLI::App& app);      // bench step
void add_audit_command(CLI::App& app);      // audit, audit bound
void add_diffusion_command(CLI::App& app);  // pretrain, finetune, sample

}  // namespace dptrain::cli
