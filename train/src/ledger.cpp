#include "dptrain/train/ledger.h"

#include "file_helpers.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "dptrain/dp/mechanism/secure_random.h"
#include "dptrain/train/checkpoint.h"

namespace dptrain::train {
namespace {

constexpr char kHeader[] = "dptrain privacy ledger v1";

using detail::io_error;

std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

// Reads the whole file; throws naming it if it cannot be read.
std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error("cannot open privacy ledger", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw io_error("cannot read privacy ledger", path);
  return bytes.str();
}

struct Parsed {
  std::string run_id;
  std::string identity;
  accountant::EventHistory history;
  std::size_t complete_bytes = 0;  // up to the last newline
};

Parsed parse(const std::string& path, const std::string& bytes) {
  Parsed p;
  const auto bad = [&](std::size_t line, const std::string& what) {
    return std::runtime_error("privacy ledger '" + path + "' line " +
                              std::to_string(line) + ": " + what);
  };
  std::size_t at = 0;
  std::size_t line_no = 0;
  while (at < bytes.size()) {
    const auto end = bytes.find('\n', at);
    if (end == std::string::npos) break;  // cut short by a crash: never ran
    const std::string line = bytes.substr(at, end - at);
    ++line_no;
    at = end + 1;
    if (line_no == 1) {
      if (line != kHeader) throw bad(1, "not a dptrain privacy ledger");
    } else if (line_no == 2) {
      if (line.rfind("run ", 0) != 0 || line.size() == 4)
        throw bad(2, "expected 'run <id>'");
      p.run_id = line.substr(4);
    } else if (line_no == 3) {
      if (line.rfind("identity ", 0) != 0)
        throw bad(3, "expected 'identity <json>'");
      p.identity = line.substr(9);
    } else {
      std::istringstream in(line);
      std::string word;
      accountant::PoissonSampledGaussian step;
      std::string rest;
      if (!(in >> word >> step.sample_rate >> step.noise_multiplier) ||
          word != "step" || (in >> rest)) {
        throw bad(line_no, "expected 'step <q> <sigma>', got '" + line + "'");
      }
      step.steps = 1;
      try {
        accountant::append_event(p.history, step);
      } catch (const std::invalid_argument& e) {
        throw bad(line_no, e.what());
      }
    }
    p.complete_bytes = at;
  }
  if (line_no < 3) {
    throw std::runtime_error("privacy ledger '" + path +
                             "' is truncated: its header is incomplete");
  }
  return p;
}

}  // namespace

std::string ledger_path(const std::string& checkpoint) {
  return checkpoint + ".ledger";
}
std::string lock_path(const std::string& checkpoint) {
  return checkpoint + ".lock";
}

std::string new_run_id() {
  const dp::ChaChaKey key = dp::os_entropy_key();
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%08x%08x%08x%08x", key[0], key[1], key[2],
                key[3]);
  return buf;
}

PrivacyLedger PrivacyLedger::create(const std::string& path,
                                    const std::string& run_id,
                                    const std::string& identity_json) {
  if (identity_json.find('\n') != std::string::npos) {
    throw std::invalid_argument("privacy ledger identity must be one line");
  }
  write_file_atomically(path, std::string(kHeader) + "\nrun " + run_id +
                                  "\nidentity " + identity_json + "\n");
  return open(path);
}

PrivacyLedger PrivacyLedger::open(const std::string& path) {
  const Parsed parsed = parse(path, read_all(path));
  PrivacyLedger ledger;
  ledger.path_ = path;
  ledger.run_id_ = parsed.run_id;
  ledger.identity_ = parsed.identity;
  ledger.history_ = parsed.history;
  ledger.fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (ledger.fd_ < 0)
    throw io_error("cannot open privacy ledger for writing", path);
  // Drop a line cut short by a crash, so the next step starts a clean line.
  if (::ftruncate(ledger.fd_, static_cast<off_t>(parsed.complete_bytes)) != 0 ||
      ::lseek(ledger.fd_, 0, SEEK_END) < 0) {
    throw io_error("cannot repair privacy ledger", path);
  }
  return ledger;
}

PrivacyLedger::PrivacyLedger(PrivacyLedger&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      run_id_(std::move(other.run_id_)),
      identity_(std::move(other.identity_)),
      history_(std::move(other.history_)) {}

PrivacyLedger& PrivacyLedger::operator=(PrivacyLedger&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    run_id_ = std::move(other.run_id_);
    identity_ = std::move(other.identity_);
    history_ = std::move(other.history_);
  }
  return *this;
}

PrivacyLedger::~PrivacyLedger() {
  if (fd_ >= 0) ::close(fd_);
}

void PrivacyLedger::append(double sample_rate, double noise_multiplier) {
  accountant::PoissonSampledGaussian step{sample_rate, noise_multiplier, 1};
  accountant::validate(step);
  const std::string line =
      "step " + exact(sample_rate) + " " + exact(noise_multiplier) + "\n";
  std::size_t written = 0;
  while (written < line.size()) {
    const ssize_t n =
        ::write(fd_, line.data() + written, line.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw io_error("cannot append to privacy ledger", path_);
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd_) != 0) throw io_error("cannot flush privacy ledger", path_);
  accountant::append_event(history_, step);
}

accountant::EventHistory read_ledger_history(const std::string& path) {
  return parse(path, read_all(path)).history;
}

CheckpointLock::CheckpointLock(const std::string& checkpoint) {
  const std::string path = lock_path(checkpoint);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw io_error("cannot create lock file", path);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    std::string holder = "unknown pid";
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    if (n > 0) holder = "pid " + std::string(buf, static_cast<std::size_t>(n));
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' '))
      holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      throw std::runtime_error("--checkpoint '" + checkpoint +
                               "' is in use by another run (" + holder +
                               " holds " + path + ")");
    }
    errno = err;
    throw io_error("cannot lock", path);
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    const auto e = io_error("cannot write lock file", path);
    ::close(fd_);
    fd_ = -1;
    throw e;
  }
}

CheckpointLock::~CheckpointLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace dptrain::train
