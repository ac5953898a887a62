#include "dptrain/datasets/image_folder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "dptrain/datasets/errors.h"
#include "dptrain/datasets/image_decoder.h"
#include "dptrain/datasets/split.h"

namespace dptrain::datasets {
namespace fs = std::filesystem;
namespace {

constexpr const char* kSplitFolders[] = {"train", "val", "test"};

// The image files directly inside `dir`, in byte order.
std::vector<std::string> image_files_in(const fs::path& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec) && is_image_file_name(it->path().string())) {
      files.push_back(it->path().string());
    }
  }
  if (ec) throw DatasetError(dir.string(), "cannot list: " + ec.message());
  std::sort(files.begin(), files.end());
  return files;
}

// Subfolders of `dir` holding at least one image, by name.
std::vector<std::string> class_folders(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_directory(ec) && !image_files_in(it->path()).empty()) {
      names.push_back(it->path().filename().string());
    }
  }
  if (ec) throw DatasetError(dir.string(), "cannot list: " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

bool has_split_folders(const fs::path& root) {
  for (const char* s : kSplitFolders) {
    std::error_code ec;
    if (fs::is_directory(root / s, ec) && !class_folders(root / s).empty()) {
      return true;
    }
  }
  return false;
}

struct FileList {
  std::vector<std::string> files;
  std::vector<std::int64_t> labels;
  std::vector<std::int64_t> groups;  // empty: no groups
  std::vector<std::string> class_names;
};

int thread_count(int requested, std::size_t work) {
  int n = requested > 0 ? requested
                        : static_cast<int>(std::thread::hardware_concurrency());
  n = std::max(n, 1);
  return static_cast<int>(std::min<std::size_t>(
      static_cast<std::size_t>(n), std::max<std::size_t>(work, 1)));
}

void check_options(const ImageFolderOptions& o) {
  if (o.height < 0 || o.width < 0 || (o.height == 0) != (o.width == 0)) {
    throw std::invalid_argument(
        "image size must be two values >= 1 (or 0 x 0 to keep the images' "
        "own), got " +
        std::to_string(o.height) + " x " + std::to_string(o.width));
  }
  if (o.channels != 0 && o.channels != 1 && o.channels != 3) {
    throw std::invalid_argument(
        "channels must be 1, 3 or 0 (from the images), got " +
        std::to_string(o.channels));
  }
  if (o.threads < 0) {
    throw std::invalid_argument("threads must be >= 0, got " +
                                std::to_string(o.threads));
  }
}

// Decodes (and resizes) every file in worker threads, then assembles the
// data set in file order. The first error in file order is thrown unless
// skip_corrupt.
ImageDataset decode_all(const FileList& list, const ImageFolderOptions& options,
                        const std::string& name, ImageLoadReport* report) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t n = list.files.size();
  if (n == 0) throw DatasetError(name, "no images (.jpg, .jpeg, .png)");
  std::vector<std::optional<DecodedImage>> images(n);
  std::vector<std::string> errors(n);
  std::vector<std::exception_ptr> failures(n);
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> done{0};
  std::mutex progress_mutex;
  auto work = [&] {
    for (std::size_t i = next++; i < n && !stop; i = next++) {
      try {
        DecodedImage image = decode_image_file(list.files[i]);
        if (options.height > 0) {
          image = resize_center_crop(image, options.height, options.width);
        }
        images[i] = std::move(image);
      } catch (const std::exception& e) {
        errors[i] = e.what();
        failures[i] = std::current_exception();
        if (!options.skip_corrupt) stop = true;
      }
      const std::int64_t finished = ++done;
      if (options.on_progress) {
        std::lock_guard<std::mutex> lock(progress_mutex);
        options.on_progress(finished, static_cast<std::int64_t>(n));
      }
    }
  };
  std::vector<std::thread> workers;
  const int threads = thread_count(options.threads, n);
  for (int t = 1; t < threads; ++t) workers.emplace_back(work);
  work();
  for (auto& w : workers) w.join();

  std::vector<std::size_t> kept;
  std::vector<std::string> skipped;
  for (std::size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) {
      if (!options.skip_corrupt) std::rethrow_exception(failures[i]);
      skipped.push_back(errors[i]);
    } else if (images[i]) {
      kept.push_back(i);
    }
  }
  if (kept.empty()) {
    throw DatasetError(name, "no image could be decoded (" +
                                 std::to_string(skipped.size()) + " skipped)");
  }
  std::int64_t channels = options.channels;
  if (channels == 0) {
    channels = 1;
    for (std::size_t i : kept)
      channels = std::max(channels, images[i]->channels);
  }
  const DecodedImage& first = *images[kept.front()];
  const std::int64_t h = first.height;
  const std::int64_t w = first.width;
  for (std::size_t i : kept) {
    if (images[i]->height != h || images[i]->width != w) {
      throw DatasetError(
          list.files[i],
          "is " + std::to_string(images[i]->width) + " x " +
              std::to_string(images[i]->height) + " pixels but " +
              list.files[kept.front()] + " is " + std::to_string(w) + " x " +
              std::to_string(h) +
              ": give an output size (`dptrain data convert SRC --to out.h5 "
              "--size H,W`)");
    }
  }
  const auto count = static_cast<std::int64_t>(kept.size());
  at::Tensor pixels = at::empty({count, channels, h, w}, at::kByte);
  at::Tensor labels = at::empty({count}, at::kLong);
  at::Tensor groups;
  if (!list.groups.empty()) groups = at::empty({count}, at::kLong);
  std::uint8_t* out = pixels.data_ptr<std::uint8_t>();
  std::int64_t* label_out = labels.data_ptr<std::int64_t>();
  std::int64_t* group_out =
      groups.defined() ? groups.data_ptr<std::int64_t>() : nullptr;
  const std::int64_t plane = h * w;
  for (std::int64_t k = 0; k < count; ++k) {
    const std::size_t i = kept[static_cast<std::size_t>(k)];
    const DecodedImage image = with_channels(*images[i], channels);
    std::uint8_t* dst = out + k * channels * plane;
    for (std::int64_t p = 0; p < plane; ++p) {
      for (std::int64_t c = 0; c < channels; ++c) {
        dst[c * plane + p] =
            image.pixels[static_cast<std::size_t>(p * channels + c)];
      }
    }
    images[i].reset();
    label_out[k] = list.labels[i];
    if (group_out != nullptr) group_out[k] = list.groups[i];
  }
  if (report != nullptr) {
    report->decoded = count;
    report->skipped = std::move(skipped);
    report->seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    report->class_names = list.class_names;
  }
  return ImageDataset(pixels, labels,
                      static_cast<std::int64_t>(list.class_names.size()),
                      groups, name);
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  for (char ch : line) {
    if (ch == ',') {
      fields.push_back(field);
      field.clear();
    } else if (ch != '\r') {
      field += ch;
    }
  }
  fields.push_back(field);
  for (auto& f : fields) {
    const auto a = f.find_first_not_of(" \t");
    const auto b = f.find_last_not_of(" \t");
    f = a == std::string::npos ? "" : f.substr(a, b - a + 1);
  }
  return fields;
}

std::optional<std::int64_t> parse_integer(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::size_t used = 0;
  try {
    const long long v = std::stoll(text, &used);
    if (used != text.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

struct CsvRow {
  std::string path, label, group, split;
  std::size_t line = 0;
};

struct CsvTable {
  std::vector<CsvRow> rows;
  bool has_group = false;
  bool has_split = false;
};

CsvTable read_csv(const std::string& csv) {
  std::ifstream in(csv);
  if (!in) throw DatasetError(csv, "cannot open");
  std::string line;
  std::size_t number = 0;
  std::map<std::string, std::size_t> column;
  while (std::getline(in, line)) {
    ++number;
    if (split_fields(line) != std::vector<std::string>{""}) break;
  }
  const auto header = split_fields(line);
  for (std::size_t i = 0; i < header.size(); ++i) {
    if (!column.emplace(header[i], i).second) {
      throw DatasetError(csv, "line " + std::to_string(number) + ": column \"" +
                                  header[i] + "\" repeats");
    }
  }
  for (const char* needed : {"path", "label"}) {
    if (column.count(needed) == 0) {
      throw DatasetError(csv, "line " + std::to_string(number) +
                                  ": the header has no \"" + needed +
                                  "\" column (expected path,label[,group]"
                                  "[,split])");
    }
  }
  CsvTable table;
  table.has_group = column.count("group") > 0;
  table.has_split = column.count("split") > 0;
  const fs::path base = fs::path(csv).parent_path();
  while (std::getline(in, line)) {
    ++number;
    const auto fields = split_fields(line);
    if (fields == std::vector<std::string>{""}) continue;
    if (fields.size() != header.size()) {
      throw DatasetError(csv, "line " + std::to_string(number) + ": " +
                                  std::to_string(fields.size()) +
                                  " fields, the header has " +
                                  std::to_string(header.size()));
    }
    CsvRow row;
    row.line = number;
    const fs::path p(fields[column["path"]]);
    if (p.empty()) {
      throw DatasetError(csv,
                         "line " + std::to_string(number) + ": empty path");
    }
    row.path = (p.is_absolute() ? p : base / p).string();
    row.label = fields[column["label"]];
    if (row.label.empty()) {
      throw DatasetError(csv,
                         "line " + std::to_string(number) + ": empty label");
    }
    if (table.has_group) row.group = fields[column["group"]];
    if (table.has_split) row.split = fields[column["split"]];
    table.rows.push_back(std::move(row));
  }
  if (table.rows.empty()) throw DatasetError(csv, "lists no images");
  return table;
}

}  // namespace

bool is_image_folder(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return false;
  return has_split_folders(path) || !class_folders(path).empty();
}

std::vector<std::string> image_folder_splits(const std::string& root) {
  if (!has_split_folders(root)) return {"all"};
  std::vector<std::string> out;
  for (const char* s : kSplitFolders) {
    std::error_code ec;
    const fs::path dir = fs::path(root) / s;
    if (fs::is_directory(dir, ec) && !class_folders(dir).empty()) {
      out.emplace_back(s);
    }
  }
  return out;
}

ImageDataset load_image_folder(const std::string& root,
                               const std::string& split,
                               const ImageFolderOptions& options,
                               ImageLoadReport* report) {
  check_options(options);
  if (!is_image_folder(root)) {
    throw DatasetError(root,
                       "not an image folder: expected ROOT/<class>/*.jpg|png "
                       "(or ROOT/train/<class>/..., ROOT/val/..., "
                       "ROOT/test/...)");
  }
  const auto splits = image_folder_splits(root);
  require_split(splits, split, root);
  FileList list;
  std::set<std::string> names;
  for (const auto& s : splits) {
    const fs::path dir = s == "all" ? fs::path(root) : fs::path(root) / s;
    for (const auto& c : class_folders(dir)) names.insert(c);
  }
  list.class_names.assign(names.begin(), names.end());
  const fs::path dir = split == "all" ? fs::path(root) : fs::path(root) / split;
  for (std::size_t c = 0; c < list.class_names.size(); ++c) {
    std::error_code ec;
    if (!fs::is_directory(dir / list.class_names[c], ec)) continue;
    for (auto& file : image_files_in(dir / list.class_names[c])) {
      list.files.push_back(std::move(file));
      list.labels.push_back(static_cast<std::int64_t>(c));
    }
  }
  return decode_all(list, options, dir.string(), report);
}

std::vector<std::string> image_csv_splits(const std::string& csv) {
  const CsvTable table = read_csv(csv);
  if (!table.has_split) return {"all"};
  std::vector<std::string> out;
  for (const auto& row : table.rows) {
    if (std::find(out.begin(), out.end(), row.split) == out.end()) {
      out.push_back(row.split);
    }
  }
  return out;
}

ImageDataset load_image_csv(const std::string& csv, const std::string& split,
                            const ImageFolderOptions& options,
                            ImageLoadReport* report) {
  check_options(options);
  const CsvTable table = read_csv(csv);
  if (!table.has_split && split != "all") {
    throw std::invalid_argument("split \"" + split + "\" is not in " + csv +
                                " (it has no split column: \"all\")");
  }
  // Labels: all integers -> as they are; otherwise names in byte order.
  bool numeric = true;
  std::int64_t max_label = -1;
  std::set<std::string> names;
  for (const auto& row : table.rows) {
    const auto v = parse_integer(row.label);
    if (!v || *v < 0) numeric = false;
    if (v) max_label = std::max(max_label, *v);
    names.insert(row.label);
  }
  FileList list;
  std::map<std::string, std::int64_t> index;
  if (numeric) {
    if (max_label >= kMaxClasses) {
      throw DatasetError(
          csv, "label " + std::to_string(max_label) + " is beyond the " +
                   std::to_string(kMaxClasses) + " classes accepted");
    }
    for (std::int64_t c = 0; c <= max_label; ++c) {
      list.class_names.push_back(std::to_string(c));
    }
  } else {
    list.class_names.assign(names.begin(), names.end());
    for (std::size_t c = 0; c < list.class_names.size(); ++c) {
      index[list.class_names[c]] = static_cast<std::int64_t>(c);
    }
  }
  bool found = false;
  for (const auto& row : table.rows) {
    if (table.has_split && row.split != split) continue;
    found = true;
    list.files.push_back(row.path);
    list.labels.push_back(numeric ? *parse_integer(row.label)
                                  : index[row.label]);
    if (table.has_group) {
      const auto g = parse_integer(row.group);
      if (!g || *g < -1) {
        throw DatasetError(csv, "line " + std::to_string(row.line) +
                                    ": group \"" + row.group +
                                    "\" is not an integer >= -1");
      }
      list.groups.push_back(*g);
    }
  }
  if (!found) {
    throw std::invalid_argument("split \"" + split + "\" is not in " + csv);
  }
  return decode_all(list, options, csv + (split == "all" ? "" : ":" + split),
                    report);
}

}  // namespace dptrain::datasets
