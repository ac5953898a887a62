// Placeholder until datasets/ lands: replaced by the `data info` command.
#include "commands.h"
namespace dptrain::cli {
void add_data_command(CLI::App&) {}
}  // namespace dptrain::cli
