#include "dptrain/models/weights.h"

#include <hdf5.h>
#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "hdf5_handle.h"

namespace dptrain::models {
namespace {

constexpr const char* kFormat = "dptrain-weights";
constexpr int kFormatVersion = 1;

using detail::Handle;
using detail::QuietHdf5;

// Every parameter and buffer by full module path, in registration order.
std::vector<std::pair<std::string, torch::Tensor>> named_tensors(
    const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters(true)) {
    out.emplace_back(p.key(), p.value());
  }
  for (const auto& b : module.named_buffers(true)) {
    out.emplace_back(b.key(), b.value());
  }
  return out;
}

std::string list(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

bool excluded(const std::string& name, const std::optional<std::regex>& re) {
  return re && std::regex_search(name, *re);
}

std::optional<std::regex> compile_exclude(const LoadOptions& options) {
  if (options.exclude.empty()) return std::nullopt;
  try {
    return std::regex(options.exclude, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument("exclude pattern '" + options.exclude +
                                "' is not a valid regex: " + e.what());
  }
}

// What a file offers: name → shape, plus a reader for its data.
struct Source {
  std::map<std::string, std::vector<int64_t>> shapes;
  std::function<torch::Tensor(const std::string&)> read;
};

// Checks names and shapes against the model; if all match, reads every
// needed tensor, then copies them in (all or nothing).
LoadReport load_checked(torch::nn::Module& module, const std::string& path,
                        const Source& source, const LoadOptions& options) {
  const auto exclude = compile_exclude(options);
  LoadReport report;
  std::vector<std::string> missing, unexpected, mis_shaped;
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  std::map<std::string, bool> expected;
  for (auto& [name, tensor] : named_tensors(module)) {
    expected[name] = true;
    if (excluded(name, exclude)) {
      report.skipped.push_back(name);
      continue;
    }
    auto it = source.shapes.find(name);
    if (it == source.shapes.end()) {
      missing.push_back(name);
    } else if (it->second != tensor.sizes().vec()) {
      mis_shaped.push_back(name + " (file " +
                           c10::str(at::IntArrayRef(it->second)) + ", model " +
                           c10::str(tensor.sizes()) + ")");
    } else {
      targets.emplace_back(name, tensor);
    }
  }
  for (const auto& [name, shape] : source.shapes) {
    if (!expected.count(name) && !excluded(name, exclude)) {
      unexpected.push_back(name);
    }
  }
  if (!missing.empty() || !unexpected.empty() || !mis_shaped.empty()) {
    std::string msg = "weights file '" + path +
                      "' does not match the model; nothing was loaded";
    if (!missing.empty()) msg += "; missing: " + list(missing);
    if (!unexpected.empty()) msg += "; unexpected: " + list(unexpected);
    if (!mis_shaped.empty()) msg += "; mis-shaped: " + list(mis_shaped);
    throw std::invalid_argument(msg);
  }
  std::vector<torch::Tensor> values;
  values.reserve(targets.size());
  for (const auto& [name, tensor] : targets) {
    values.push_back(
        source.read(name).to(tensor.device(), tensor.scalar_type()));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < targets.size(); ++i) {
    targets[i].second.copy_(values[i]);
    report.loaded.push_back(targets[i].first);
  }
  return report;
}

void require_readable(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    throw std::invalid_argument("weights file '" + path +
                                "' cannot be opened for reading");
  }
}

herr_t collect_link(hid_t group, const char* name, const H5L_info_t* /*info*/,
                    void* data) {
  const hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj < 0) return 0;
  const bool is_dataset = H5Iget_type(obj) == H5I_DATASET;
  H5Oclose(obj);
  if (is_dataset)
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

std::string dotted(std::string hdf5_path) {
  std::replace(hdf5_path.begin(), hdf5_path.end(), '/', '.');
  return hdf5_path;
}

void write_string_attribute(hid_t file, const char* key,
                            const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), value.size());
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(
      H5Acreate2(file, key, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  if (!attr.ok() || H5Awrite(attr.get(), type.get(), value.data()) < 0) {
    throw std::runtime_error(key);
  }
}

}  // namespace

namespace {

// Runs `write(tmp)` on a temporary file beside `path` (same extension, so the
// writer's format checks see the real one) and renames it over `path`, so
// an existing file is replaced only by a complete one. The temporary file is
// removed when the writer throws.
template <typename Write>
void write_atomically(const std::string& path, Write&& write) {
  const std::filesystem::path target(path);
  std::filesystem::path tmp = target;
  tmp.replace_filename("." + target.stem().string() + ".tmp-" +
                       std::to_string(::getpid()) +
                       target.extension().string());
  try {
    write(tmp.string());
    std::filesystem::rename(tmp, target);
  } catch (const std::filesystem::filesystem_error& e) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw std::invalid_argument("cannot write weights file '" + path +
                                "': " + e.what());
  } catch (const std::invalid_argument& e) {
    // The writer names the temporary file: name the one the caller asked for.
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    std::string message = e.what();
    for (auto at = message.find(tmp.string()); at != std::string::npos;
         at = message.find(tmp.string(), at + path.size())) {
      message.replace(at, tmp.string().size(), path);
    }
    throw std::invalid_argument(message);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

void write_hdf5(const torch::nn::Module& module, const std::string& path) {
  QuietHdf5 quiet;
  Handle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
              H5Fclose);
  if (!file.ok()) {
    throw std::invalid_argument("cannot create weights file '" + path + "'");
  }
  try {
    write_string_attribute(file.get(), "dptrain_format", kFormat);
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle attr(H5Acreate2(file.get(), "dptrain_format_version", H5T_STD_I32LE,
                           space.get(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
    if (!attr.ok() ||
        H5Awrite(attr.get(), H5T_NATIVE_INT, &kFormatVersion) < 0) {
      throw std::runtime_error("dptrain_format_version");
    }
    for (const auto& [name, tensor] : named_tensors(module)) {
      const auto t =
          tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
      std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
      Handle ds_space(t.dim() == 0
                          ? H5Screate(H5S_SCALAR)
                          : H5Screate_simple(t.dim(), dims.data(), nullptr),
                      H5Sclose);
      Handle dset(
          H5Dcreate2(file.get(), name.c_str(), H5T_IEEE_F32LE, ds_space.get(),
                     H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
          H5Dclose);
      if (!dset.ok()) throw std::runtime_error(name);
      if (t.numel() > 0 &&
          H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                   t.data_ptr<float>()) < 0) {
        throw std::runtime_error(name);
      }
    }
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument("cannot write '" + std::string(e.what()) +
                                "' to weights file '" + path + "'");
  }
}

void write_torch(const torch::nn::Module& module, const std::string& path) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  try {
    archive.save_to(path);
  } catch (const c10::Error& e) {
    throw std::invalid_argument("cannot write weights file '" + path +
                                "': " + e.what_without_backtrace());
  }
}

}  // namespace

void save_weights_hdf5(const torch::nn::Module& module,
                       const std::string& path) {
  write_atomically(path,
                   [&](const std::string& tmp) { write_hdf5(module, tmp); });
}

LoadReport load_weights_hdf5(torch::nn::Module& module, const std::string& path,
                             const LoadOptions& options) {
  require_readable(path);
  QuietHdf5 quiet;
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw std::invalid_argument("weights file '" + path +
                                "' is not an HDF5 file");
  }
  auto file = std::make_shared<Handle>(
      H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!file->ok()) {
    throw std::invalid_argument("cannot open HDF5 weights file '" + path + "'");
  }
  std::vector<std::string> links;
  H5Lvisit(file->get(), H5_INDEX_NAME, H5_ITER_NATIVE, collect_link, &links);
  Source source;
  std::map<std::string, std::string> hdf5_name;  // dotted → path in file
  std::vector<std::string> bad_type;
  for (const auto& link : links) {
    Handle dset(H5Dopen2(file->get(), link.c_str(), H5P_DEFAULT), H5Dclose);
    Handle type(H5Dget_type(dset.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_FLOAT) {
      bad_type.push_back(link);
      continue;
    }
    Handle space(H5Dget_space(dset.get()), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    const std::string name = dotted(link);
    source.shapes[name] = std::vector<int64_t>(dims.begin(), dims.end());
    hdf5_name[name] = link;
  }
  if (!bad_type.empty()) {
    throw std::invalid_argument("weights file '" + path +
                                "' has non-floating-point datasets: " +
                                list(bad_type) + "; nothing was loaded");
  }
  source.read = [&](const std::string& name) {
    const auto& shape = source.shapes.at(name);
    auto t = torch::empty(shape, torch::kDouble);
    Handle dset(H5Dopen2(file->get(), hdf5_name.at(name).c_str(), H5P_DEFAULT),
                H5Dclose);
    if (t.numel() > 0 &&
        H5Dread(dset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                t.data_ptr<double>()) < 0) {
      throw std::invalid_argument("cannot read dataset '" + name +
                                  "' of weights file '" + path +
                                  "'; nothing was loaded");
    }
    return t;
  };
  return load_checked(module, path, source, options);
}

void save_weights_torch(const torch::nn::Module& module,
                        const std::string& path) {
  write_atomically(path,
                   [&](const std::string& tmp) { write_torch(module, tmp); });
}

namespace {

// Walks a torch::save archive alongside the module tree, collecting every
// tensor it holds under its dotted path (and submodule archives).
void index_archive(torch::serialize::InputArchive& archive,
                   const std::string& prefix,
                   std::map<std::string, torch::Tensor>& tensors,
                   std::vector<std::string>& other) {
  for (const auto& key : archive.keys()) {
    if (key == "training") continue;  // jit module flag, not a tensor
    torch::Tensor t;
    if (archive.try_read(key, t, /*is_buffer=*/false) ||
        archive.try_read(key, t, /*is_buffer=*/true)) {
      tensors[prefix + key] = t;
      continue;
    }
    torch::serialize::InputArchive child;
    if (archive.try_read(key, child)) {
      index_archive(child, prefix + key + ".", tensors, other);
    } else {
      other.push_back(prefix + key);
    }
  }
}

}  // namespace

LoadReport load_weights_torch(torch::nn::Module& module,
                              const std::string& path,
                              const LoadOptions& options) {
  require_readable(path);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw std::invalid_argument(
        "weights file '" + path +
        "' is not a LibTorch archive: " + e.what_without_backtrace());
  }
  std::map<std::string, torch::Tensor> tensors;
  std::vector<std::string> other;
  index_archive(archive, "", tensors, other);
  Source source;
  for (const auto& [name, t] : tensors) source.shapes[name] = t.sizes().vec();
  for (const auto& name : other) source.shapes[name] = {-1};  // never matches
  source.read = [&](const std::string& name) { return tensors.at(name); };
  return load_checked(module, path, source, options);
}

namespace {
enum class Format { kHdf5, kTorch };
Format format_of(const std::string& path) {
  const auto dot = path.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  if (ext == ".h5" || ext == ".hdf5") return Format::kHdf5;
  if (ext == ".pt" || ext == ".pth") return Format::kTorch;
  throw std::invalid_argument(
      "weights file '" + path +
      "' must end in .h5, .hdf5 (HDF5), .pt or .pth (LibTorch)");
}
}  // namespace

void save_weights(const torch::nn::Module& module, const std::string& path) {
  if (format_of(path) == Format::kHdf5) {
    save_weights_hdf5(module, path);
  } else {
    save_weights_torch(module, path);
  }
}

LoadReport load_weights(torch::nn::Module& module, const std::string& path,
                        const LoadOptions& options) {
  return format_of(path) == Format::kHdf5
             ? load_weights_hdf5(module, path, options)
             : load_weights_torch(module, path, options);
}

}  // namespace dptrain::models
