// `dptrain data info PATH [--json]`: per split the count, image shape,
// classes and per-class counts of a data set on disk. `dptrain data convert
// SRC --to OUT.h5`: any data set we read (image folders and CSV lists of
// JPEG/PNG files included) into our HDF5 layout, for repeated runs.
#include <cstdint>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "command_summaries.h"
#include "commands.h"
#include "dptrain/datasets/dataset_info.h"
#include "dptrain/datasets/hdf5_writer.h"
#include "dptrain/datasets/image_folder.h"
#include "dptrain/train/progress.h"

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

struct ConvertOptions {
  std::string source;
  std::string out;
  std::vector<std::int64_t> size;
  std::int64_t channels = 0;
  bool skip_corrupt = false;
  int threads = 0;
};

bool is_image_format(datasets::DatasetFormat f) {
  return f == datasets::DatasetFormat::kImageFolder ||
         f == datasets::DatasetFormat::kImageCsv;
}

void convert(const ConvertOptions& o) {
  const std::string source = datasets::resolve_dataset_path(o.source);
  const auto format = datasets::detect_format(source);
  datasets::ImageFolderOptions images;
  if (!o.size.empty()) {
    if (o.size.size() != 2 || o.size[0] < 1 || o.size[1] < 1) {
      throw std::invalid_argument("--size must be H,W with both >= 1");
    }
    images.height = o.size[0];
    images.width = o.size[1];
  }
  if (o.channels != 0 && o.channels != 1 && o.channels != 3) {
    throw std::invalid_argument("--channels must be 1 or 3, got " +
                                std::to_string(o.channels));
  }
  images.channels = o.channels;
  images.skip_corrupt = o.skip_corrupt;
  if (o.threads < 0) {
    throw std::invalid_argument("--threads must be >= 0, got " +
                                std::to_string(o.threads));
  }
  images.threads = o.threads;
  if (!is_image_format(format) &&
      (!o.size.empty() || o.channels != 0 || o.skip_corrupt)) {
    throw std::invalid_argument(
        "--size, --channels and --skip-corrupt apply to image folders and "
        "CSV lists of images; " +
        source + " is " + datasets::to_string(format));
  }
  const auto ext = o.out.substr(o.out.find_last_of('.') == std::string::npos
                                    ? o.out.size()
                                    : o.out.find_last_of('.'));
  if (ext != ".h5" && ext != ".hdf5") {
    throw std::invalid_argument("--to '" + o.out + "' must end .h5 or .hdf5");
  }
  std::vector<datasets::Hdf5Split> splits;
  std::vector<std::string> class_names;
  nlohmann::ordered_json report = nlohmann::ordered_json::object();
  for (const auto& split : datasets::list_splits(source)) {
    datasets::ImageLoadReport loaded;
    datasets::ImageDataset data;
    if (is_image_format(format)) {
      train::ProgressBar bar("decoding " + split, 1);
      images.on_progress = [&bar](std::int64_t done, std::int64_t total) {
        bar.update(done * 1000 / std::max<std::int64_t>(total, 1));
      };
      data = format == datasets::DatasetFormat::kImageFolder
                 ? datasets::load_image_folder(source, split, images, &loaded)
                 : datasets::load_image_csv(source, split, images, &loaded);
      bar.finish();
      class_names = loaded.class_names;
      for (const auto& skipped : loaded.skipped) {
        std::cerr << "skipped " << skipped << "\n";
      }
      const double rate =
          loaded.seconds > 0 ? loaded.decoded / loaded.seconds : 0;
      std::cout << split << ": " << loaded.decoded << " images decoded in "
                << loaded.seconds << " s (" << rate << " images/s), "
                << loaded.skipped.size() << " skipped\n";
      report[split] = {{"decoded", loaded.decoded},
                       {"skipped", loaded.skipped.size()},
                       {"seconds", loaded.seconds}};
    } else {
      data = datasets::load_dataset(source, split);
      std::cout << split << ": " << data.size() << " examples\n";
    }
    splits.push_back({split == "all" ? std::string() : split, std::move(data)});
  }
  datasets::Hdf5WriteOptions attributes;
  attributes.string_attributes.emplace_back("source", source);
  attributes.string_attributes.emplace_back("source_format",
                                            datasets::to_string(format));
  if (!class_names.empty()) {
    std::string joined;
    for (const auto& n : class_names)
      joined += (joined.empty() ? "" : "\n") + n;
    attributes.string_attributes.emplace_back("class_names", joined);
  }
  datasets::write_hdf5(o.out, splits, attributes);
  std::cout << "wrote " << o.out << "\n";
}

}  // namespace

void add_data_command(CLI::App& app) {
  auto* data = app.add_subcommand("data", summary_of("data"));
  data->require_subcommand(1);
  auto options = std::make_shared<DataInfoOptions>();
  auto* info = data->add_subcommand(
      "info",
      "Per split: count, image shape, classes and per-class counts of a data "
      "set (an IDX/Fashion-MNIST or CIFAR folder, an HDF5 file, a folder of "
      "class folders of JPEG/PNG images, or a CSV list of images)");
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

  auto convert_options = std::make_shared<ConvertOptions>();
  auto* conv = data->add_subcommand(
      "convert",
      "Write a data set (any that `data info` reads; image folders "
      "ROOT/<class>/*.jpg|png or ROOT/{train,val,test}/<class>/..., and CSV "
      "files path,label[,group][,split]) to one HDF5 file in the layout "
      "`train --dataset` reads, each split a group ('all' at the root)");
  conv->add_option("source", convert_options->source,
                   "the data set folder or file")
      ->required();
  conv->add_option("--to", convert_options->out, "output HDF5 file (.h5)")
      ->required();
  conv->add_option("--size", convert_options->size,
                   "H,W: scale each image to cover H x W and crop its centre "
                   "(default: keep the images' size, which must agree)")
      ->delimiter(',');
  conv->add_option("--channels", convert_options->channels,
                   "1 (grey) or 3 (RGB) (default: 3 if any image is colour)");
  conv->add_flag("--skip-corrupt", convert_options->skip_corrupt,
                 "leave out images that fail to decode (each is listed) "
                 "instead of stopping at the first");
  conv->add_option("--decode-threads", convert_options->threads,
                   "decoding threads (default: all cores)");
  conv->callback([convert_options] { convert(*convert_options); });
}

}  // namespace dptrain::cli
