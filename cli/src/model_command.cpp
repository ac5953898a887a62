// `dptrain model info NAME [--num-classes N] [--in-channels C]
// [--image-size S] [--json]` and `dptrain model list [--json]`: the
// architecture summary and exact parameter count, computed from the
// configuration (nothing is allocated, so nfnet-f7 is instant).
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/models/registry.h"

namespace dptrain::cli {
namespace {

struct ModelInfoOptions {
  std::string name;
  std::int64_t num_classes = 0;
  std::int64_t in_channels = 0;
  std::int64_t image_size = 0;
  bool json = false;
};

std::string with_commas(std::int64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) {
    digits.insert(static_cast<std::size_t>(i), ",");
  }
  return digits;
}

void run_info(const ModelInfoOptions& o) {
  const auto info = models::model_info(o.name, models::ModelOptions()
                                                   .num_classes(o.num_classes)
                                                   .in_channels(o.in_channels)
                                                   .image_size(o.image_size));
  const bool sequence = info.kind == "sequence";
  if (o.json) {
    nlohmann::ordered_json out = {{"name", info.name},
                                  {"kind", info.kind},
                                  {"family", info.family},
                                  {"description", info.description}};
    if (sequence) {
      out["vocab_size"] = info.vocab_size;
    } else {
      out["input"] = {info.in_channels, info.image_size, info.image_size};
      out["num_classes"] = info.num_classes;
    }
    out["parameters"] = info.parameters;
    out["summary"] = info.summary;
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << info.name << ": " << info.description << "\n";
  if (sequence) {
    std::cout << "vocabulary: " << info.vocab_size << " tokens\n";
  } else {
    std::cout << "input [C, H, W]: [" << info.in_channels << ", "
              << info.image_size << ", " << info.image_size << "]\n"
              << "classes: " << info.num_classes << "\n";
  }
  std::cout << "parameters: " << with_commas(info.parameters) << "\n";
  for (const auto& line : info.summary) std::cout << "  " << line << "\n";
}

}  // namespace

void add_model_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("model", summary_of("model"));
  cmd->require_subcommand(1);

  auto options = std::make_shared<ModelInfoOptions>();
  auto* info = cmd->add_subcommand(
      "info", "Architecture summary and parameter count of a model");
  info->add_option("name", options->name,
                   "model name, e.g. cnn, wrn-16-4, nf-resnet-50, nfnet-f0")
      ->required();
  info->add_option("--num-classes", options->num_classes,
                   "output classes (default: the model's)")
      ->check(CLI::PositiveNumber);
  info->add_option("--in-channels", options->in_channels,
                   "input channels (default: the model's)")
      ->check(CLI::PositiveNumber);
  info->add_option("--image-size", options->image_size,
                   "input height = width (default: the model's)")
      ->check(CLI::PositiveNumber);
  info->add_flag("--json", options->json, "print JSON");
  info->callback([options] { run_info(*options); });

  auto list_json = std::make_shared<bool>(false);
  auto* list = cmd->add_subcommand("list", "Names of the built-in models");
  list->add_flag("--json", *list_json, "print a JSON array");
  list->callback([list_json] {
    const auto names = models::list_all_models();
    if (*list_json) {
      std::cout << nlohmann::json(names).dump() << "\n";
      return;
    }
    for (const auto& n : names) std::cout << n << "\n";
    std::cout << "(and wrn-D-K for any D = 6n+4, K >= 1; image models first, "
                 "then the sequence models of --task lm, then the diffusion "
                 "UNets)\n";
  });
}

}  // namespace dptrain::cli
