#include "dptrain/train/outputs.h"

#include "file_helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "dptrain/train/ledger.h"

namespace dptrain::train {
namespace {

namespace fs = std::filesystem;

using detail::ends_with;

// The file a path names, for comparison: absolute, with . and .. and
// symbolic links of the existing part resolved.
fs::path resolved(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal() : p;
}

std::vector<RunFile> input_files(const TrainConfig& c) {
  std::vector<RunFile> in;
  std::error_code ec;
  if (c.task == "lm") {
    const std::string prefix = "text:";
    if (c.dataset.rfind(prefix, 0) == 0)
      in.push_back({"--dataset", c.dataset.substr(prefix.size())});
    if (!c.eval_dataset.empty()) {
      const auto& e = c.eval_dataset;
      in.push_back({"--eval-dataset",
                    e.rfind(prefix, 0) == 0 ? e.substr(prefix.size()) : e});
    }
  } else if (fs::is_regular_file(c.dataset, ec)) {
    in.push_back({"--dataset", c.dataset});
  }
  if (!c.init_checkpoint.empty())
    in.push_back({"--init-checkpoint", c.init_checkpoint});
  return in;
}

void probe_directory(const RunFile& out) {
  std::error_code ec;
  if (fs::is_directory(out.path, ec)) {
    throw std::invalid_argument(out.flag + " '" + out.path +
                                "' is a directory, not a file");
  }
  fs::path dir = fs::path(out.path).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec)) {
    throw std::invalid_argument(out.flag + " '" + out.path + "': directory '" +
                                dir.string() + "' does not exist");
  }
  const std::string probe =
      (dir / (".dptrain-probe." + std::to_string(::getpid()))).string();
  const int fd =
      ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw std::invalid_argument(out.flag + " '" + out.path +
                                "': cannot write in directory '" +
                                dir.string() + "': " + std::strerror(errno));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace

std::string ema_weights_path(const std::string& weights) {
  const fs::path p(weights);
  return (p.parent_path() /
          (p.stem().string() + ".ema" + p.extension().string()))
      .string();
}

std::vector<RunFile> output_files(const TrainConfig& c) {
  std::vector<RunFile> out;
  if (!c.checkpoint.empty()) {
    out.push_back({"--checkpoint", c.checkpoint});
    out.push_back(
        {"--checkpoint (its privacy ledger)", ledger_path(c.checkpoint)});
    out.push_back({"--checkpoint (its lock file)", lock_path(c.checkpoint)});
  }
  if (!c.metrics.empty()) out.push_back({"--metrics", c.metrics});
  if (!c.summary.empty()) out.push_back({"--summary", c.summary});
  if (!c.save_weights.empty()) {
    out.push_back({"--save-weights", c.save_weights});
    out.push_back({"--save-weights (the EMA's weights)",
                   ema_weights_path(c.save_weights)});
  }
  return out;
}

void check_outputs(const TrainConfig& c) {
  if (!c.save_weights.empty()) {
    const auto& w = c.save_weights;
    const bool ok = c.task == "lm"
                        ? ends_with(w, ".pt")
                        : ends_with(w, ".h5") || ends_with(w, ".hdf5") ||
                              ends_with(w, ".pt") || ends_with(w, ".pth");
    if (!ok) {
      throw std::invalid_argument(
          "--save-weights '" + w + "': " +
          (c.task == "lm"
               ? std::string(
                     "--task lm writes a .pt file (weights and model config)")
               : std::string("the extension must be .h5, .hdf5, .pt or .pth")));
    }
  }
  check_run_files(output_files(c), input_files(c));
}

void check_run_files(const std::vector<RunFile>& outputs,
                     const std::vector<RunFile>& inputs) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].path.empty()) continue;
    const auto a = resolved(outputs[i].path);
    for (std::size_t j = 0; j < i; ++j) {
      if (!outputs[j].path.empty() && resolved(outputs[j].path) == a) {
        throw std::invalid_argument(outputs[j].flag + " and " +
                                    outputs[i].flag + " are the same file '" +
                                    outputs[i].path +
                                    "': one would overwrite the other");
      }
    }
    for (const auto& input : inputs) {
      if (!input.path.empty() && resolved(input.path) == a) {
        throw std::invalid_argument(outputs[i].flag + " '" + outputs[i].path +
                                    "' is the file of " + input.flag +
                                    ": it would be overwritten");
      }
    }
  }
  for (const auto& out : outputs) {
    if (!out.path.empty()) probe_directory(out);
  }
}

int remove_stale_temporaries(const std::string& file) {
  const fs::path p(file);
  fs::path dir = p.parent_path();
  if (dir.empty()) dir = ".";
  const std::string prefix = p.filename().string() + ".tmp.";
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    if (pid_text.empty() ||
        pid_text.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const long pid = std::strtol(pid_text.c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)
      continue;  // still running
    std::error_code rm;
    if (fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

}  // namespace dptrain::train
