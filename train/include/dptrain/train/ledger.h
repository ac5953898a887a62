// The privacy record of a run that writes checkpoints (privacy invariant 7).
//
// The ledger is a text file beside the checkpoint, `<checkpoint>.ledger`. Every
// logical step is appended to it and fsync'ed *before* the step runs, so a
// crash at any moment leaves every executed step on record: the steps lost
// since the last checkpoint are run again after a resume, and both the lost
// and the repeated ones are accounted. The ledger, not the checkpoint, is the
// record: resuming from an older copy of a checkpoint never lowers ε.
//
// The lock (`<checkpoint>.lock`, flock) makes one run at a time own a
// checkpoint, so no two processes spend steps that only one records.
#pragma once

#include <cstdint>
#include <string>

#include "dptrain/accountant/event.h"

namespace dptrain::train {

/// `<checkpoint>.ledger`
std::string ledger_path(const std::string& checkpoint);
/// `<checkpoint>.lock`
std::string lock_path(const std::string& checkpoint);

/// A fresh random run id (128 bits from the OS, hex).
std::string new_run_id();

/// An append-only, write-ahead list of the steps a run executed.
///
/// File format (text, one record a line):
///   dptrain privacy ledger v1
///   run <run id>
///   identity <the run identity, one line of JSON>
///   step <q> <σ>          (one line per executed step, %.17g)
/// A last line without its newline is a write cut short by a crash: its step
/// never ran (a step runs only after its line is on disk), so it is dropped.
class PrivacyLedger {
 public:
  /// Writes a new ledger (header only) to `path` atomically, replacing any.
  /// Throws std::runtime_error naming the path on an I/O error.
  static PrivacyLedger create(const std::string& path,
                              const std::string& run_id,
                              const std::string& identity_json);
  /// Opens the ledger at `path` for appending. Throws std::runtime_error
  /// naming the file (and line) when it is missing or malformed.
  static PrivacyLedger open(const std::string& path);

  PrivacyLedger(PrivacyLedger&& other) noexcept;
  PrivacyLedger& operator=(PrivacyLedger&& other) noexcept;
  PrivacyLedger(const PrivacyLedger&) = delete;
  PrivacyLedger& operator=(const PrivacyLedger&) = delete;
  ~PrivacyLedger();

  /// Appends one step at (q, σ) and fsyncs it. Throws std::runtime_error on
  /// an I/O error; the step must then not run.
  void append(double sample_rate, double noise_multiplier);

  const std::string& path() const { return path_; }
  const std::string& run_id() const { return run_id_; }
  const std::string& identity() const { return identity_; }
  /// Every step on record, consecutive equal (q, σ) merged.
  const accountant::EventHistory& history() const { return history_; }
  std::int64_t steps() const { return accountant::total_steps(history_); }

 private:
  PrivacyLedger() = default;
  std::string path_;
  int fd_ = -1;
  std::string run_id_;
  std::string identity_;
  accountant::EventHistory history_;
};

/// Reads a ledger without opening it for writing (for messages and tools).
/// Throws as PrivacyLedger::open.
accountant::EventHistory read_ledger_history(const std::string& path);

/// An exclusive lock on a checkpoint for the lifetime of this object:
/// flock(2) on `<checkpoint>.lock`, which holds the owner's pid. The lock
/// file stays on disk (removing it would race with a waiting process); the
/// kernel drops the lock when the owner exits, however it exits.
class CheckpointLock {
 public:
  /// Throws std::runtime_error naming the checkpoint and the pid that holds
  /// it when another process does, or naming the lock file on an I/O error.
  explicit CheckpointLock(const std::string& checkpoint);
  CheckpointLock(const CheckpointLock&) = delete;
  CheckpointLock& operator=(const CheckpointLock&) = delete;
  ~CheckpointLock();

 private:
  int fd_ = -1;
};

}  // namespace dptrain::train
