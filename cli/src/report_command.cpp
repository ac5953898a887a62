// `dptrain report RUN.jsonl [--summary S.json] [--image G.png] --out R.html`:
// one self-contained HTML page of a run (report/). Torch-free: the launcher
// answers it without loading LibTorch.
#include <iostream>
#include <memory>
#include <string>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/report/report.h"

namespace dptrain::cli {

void add_report_command(CLI::App& app) {
  auto inputs = std::make_shared<report::ReportInputs>();
  auto out = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("report", summary_of("report"));
  cmd->add_option("metrics", inputs->metrics,
                  "the run's --metrics log (JSON lines)")
      ->required();
  cmd->add_option("--summary", inputs->summary,
                  "the run's --summary JSON: privacy statement, per-class "
                  "accuracy");
  cmd->add_option("--image", inputs->images,
                  "a PNG to show (e.g. `diffusion sample --grid`); repeatable");
  cmd->add_option("--title", inputs->title, "the page's title");
  cmd->add_option("--out", *out, "the HTML file to write")->required();
  cmd->callback([inputs, out] {
    report::write_page(*out, report::render(*inputs));
    std::cout << "wrote " << *out << "\n";
  });
}

}  // namespace dptrain::cli
