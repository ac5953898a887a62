// Run output: a progress bar on terminals and a JSON-lines metrics log.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace dptrain::train {

/// A one-line progress bar with rate and ETA, drawn on stderr only when it is a
/// terminal (logs and CI output stay clean).
class ProgressBar {
 public:
  /// `total` units of work (e.g. steps of an epoch), labelled `label`.
  ProgressBar(std::string label, std::int64_t total);
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar();

  /// Marks `done` units complete and redraws at most ~10 times a second.
  /// `note` is shown after the bar (e.g. "loss 0.41").
  void update(std::int64_t done, const std::string& note = "");
  /// Clears the bar line.
  void finish();

  /// The text of the bar for `done` units after `elapsed_s` seconds; exposed
  /// for tests.
  static std::string render(const std::string& label, std::int64_t done,
                            std::int64_t total, double elapsed_s,
                            const std::string& note, int width = 30);

 private:
  std::string label_;
  std::int64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

/// Appends one JSON object per line to a file, each line in one write, so a
/// killed run keeps what it logged and a reader never sees part of a line: a
/// failed write is truncated away, and a partial last line left by a crash is
/// dropped when the file is opened again. An empty path makes a no-op log.
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  ~MetricsLog();
  /// Writes `json_object` (one serialised JSON object, no newline) as a line;
  /// throws std::runtime_error naming the file when it cannot.
  void write(const std::string& json_object);
  bool enabled() const { return fd_ >= 0; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace dptrain::train
