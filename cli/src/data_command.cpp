// `dptrain data info PATH [--json]`: per split the count, image shape,
// classes and per-class counts of a data set on disk.
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/datasets/dataset_info.h"

namespace dptrain::cli {
namespace {

struct DataInfoOptions {
  std::string path;
  bool json = false;
};

std::string shape_string(const std::array<std::int64_t, 3>& s) {
  return "[" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " +
         std::to_string(s[2]) + "]";
}

void print_text(const datasets::DatasetSummary& summary) {
  std::cout << "path:   " << summary.path << "\n"
            << "format: " << summary.format << "\n";
  for (const auto& [name, s] : summary.splits) {
    std::cout << name << ": " << s.count
              << " examples, shape [C, H, W] = " << shape_string(s.shape)
              << ", " << s.classes << " classes"
              << (s.has_groups ? ", with group ids" : "") << "\n"
              << "  per class:";
    for (std::size_t c = 0; c < s.class_counts.size(); ++c) {
      std::cout << " " << c << ":" << s.class_counts[c];
    }
    std::cout << "\n";
  }
}

void print_json(const datasets::DatasetSummary& summary) {
  nlohmann::ordered_json splits = nlohmann::ordered_json::object();
  for (const auto& [name, s] : summary.splits) {
    splits[name] = {{"count", s.count},
                    {"shape", {s.shape[0], s.shape[1], s.shape[2]}},
                    {"classes", s.classes},
                    {"class_counts", s.class_counts},
                    {"has_groups", s.has_groups}};
  }
  nlohmann::ordered_json out = {
      {"path", summary.path}, {"format", summary.format}, {"splits", splits}};
  std::cout << out.dump(2) << "\n";
}

}  // namespace

void add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", summary_of("data"));
  data->require_subcommand(1);
  auto options = std::make_shared<DataInfoOptions>();
  auto* info = data->add_subcommand(
      "info",
      "Per split: count, image shape, classes and per-class counts of a data "
      "set (an IDX/Fashion-MNIST or CIFAR folder, or an HDF5 file)");
  info->add_option("path", options->path,
                   "data set folder or file, e.g. mydata.h5, or fashion-mnist "
                   "(as for train --dataset: "
                   "/usr/share/datasets/fashion-mnist)")
      ->required();
  info->add_flag("--json", options->json, "print one JSON object");
  info->callback([options] {
    const auto summary = datasets::describe_dataset(
        datasets::resolve_dataset_path(options->path));
    if (options->json) {
      print_json(summary);
    } else {
      print_text(summary);
    }
  });
}

}  // namespace dptrain::cli
