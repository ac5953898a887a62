#include "dptrain/train/progress.h"

#include <unistd.h>

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
  if (s >= 3600) out << s / 3600 << ":" << std::setw(2) << std::setfill('0') << (s / 60) % 60;
  else out << s / 60;
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

std::string ProgressBar::render(const std::string& label, std::int64_t done, std::int64_t total,
                                double elapsed_s, const std::string& note, int width) {
  const double frac = total > 0 ? std::min(1.0, static_cast<double>(done) / total) : 1.0;
  const int filled = static_cast<int>(frac * width);
  const double rate = elapsed_s > 0 ? done / elapsed_s : 0.0;
  const double eta = rate > 0 ? (total - done) / rate : NAN;
  std::ostringstream out;
  out << label << " [" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
      << done << "/" << total << " " << std::fixed << std::setprecision(2) << rate
      << " it/s, ETA " << format_duration(eta);
  if (!note.empty()) out << "  " << note;
  return out.str();
}

void ProgressBar::update(std::int64_t done, const std::string& note) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::cerr << "\r\033[K" << render(label_, done, total_, elapsed, note) << std::flush;
  drawn_ = true;
}

void ProgressBar::finish() {
  if (enabled_ && drawn_) std::cerr << "\r\033[K" << std::flush;
  drawn_ = false;
}

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  if (path.empty()) return;
  out_.open(path, std::ios::app);
  if (!out_) throw std::runtime_error("--metrics: cannot open '" + path + "' for appending");
}

void MetricsLog::write(const std::string& json_object) {
  if (!out_.is_open()) return;
  out_ << json_object << '\n';
  out_.flush();
  if (!out_) throw std::runtime_error("--metrics: cannot write to '" + path_ + "'");
}

}  // namespace dptrain::train
