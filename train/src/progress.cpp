#include "dptrain/train/progress.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace dptrain::train {
namespace {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<long long>(seconds + 0.5);
  std::ostringstream out;
  if (s >= 3600)
    out << s / 3600 << ":" << std::setw(2) << std::setfill('0')
        << (s / 60) % 60;
  else
    out << s / 60;
  out << ":" << std::setw(2) << std::setfill('0') << s % 60;
  return out.str();
}

}  // namespace

ProgressBar::ProgressBar(std::string label, std::int64_t total)
    : label_(std::move(label)),
      total_(total),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() { finish(); }

std::string ProgressBar::render(const std::string& label, std::int64_t done,
                                std::int64_t total, double elapsed_s,
                                const std::string& note, int width) {
  const double frac =
      total > 0 ? std::min(1.0, static_cast<double>(done) / total) : 1.0;
  const int filled = static_cast<int>(frac * width);
  const double rate = elapsed_s > 0 ? done / elapsed_s : 0.0;
  const double eta = rate > 0 ? (total - done) / rate : NAN;
  std::ostringstream out;
  out << label << " [" << std::string(filled, '#')
      << std::string(width - filled, '.') << "] " << done << "/" << total << " "
      << std::fixed << std::setprecision(2) << rate << " it/s, ETA "
      << format_duration(eta);
  if (!note.empty()) out << "  " << note;
  return out.str();
}

void ProgressBar::update(std::int64_t done, const std::string& note) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total_ &&
      now - last_draw_ < std::chrono::milliseconds(100))
    return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::cerr << "\r\033[K" << render(label_, done, total_, elapsed, note)
            << std::flush;
  drawn_ = true;
}

void ProgressBar::finish() {
  if (enabled_ && drawn_) std::cerr << "\r\033[K" << std::flush;
  drawn_ = false;
}

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  if (path.empty()) return;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    throw std::runtime_error("--metrics: cannot open '" + path +
                             "' for appending: " + std::strerror(errno));
  }
  // A line cut short by a crash or a full disk ends the file: drop it, so a
  // reader only ever sees whole lines.
  const off_t size = ::lseek(fd_, 0, SEEK_END);
  off_t keep = size;
  char c = '\n';
  while (keep > 0 && ::pread(fd_, &c, 1, keep - 1) == 1 && c != '\n') --keep;
  if (keep != size && ::ftruncate(fd_, keep) != 0) {
    throw std::runtime_error("--metrics: cannot repair '" + path +
                             "': " + std::strerror(errno));
  }
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(const std::string& json_object) {
  if (fd_ < 0) return;
  const std::string line = json_object + "\n";
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  // One write of the whole line (O_APPEND); a short or failed write is
  // undone, so no partial line stays behind.
  std::size_t written = 0;
  int err = 0;
  while (written < line.size()) {
    const ssize_t n =
        ::write(fd_, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : ENOSPC;
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (written < line.size()) {
    if (before >= 0 && ::ftruncate(fd_, before) != 0) {
      // Nothing more can be done; the next open drops the partial line.
    }
    throw std::runtime_error("--metrics: cannot write to '" + path_ +
                             "': " + std::strerror(err));
  }
}

}  // namespace dptrain::train
