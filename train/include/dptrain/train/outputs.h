// The files a training run writes, checked before the first private step
// (issue: nothing may fail after the budget is spent).
#pragma once

#include <string>
#include <vector>

#include "dptrain/train/config.h"

namespace dptrain::train {

/// One file a run writes (or reads), with the flag that names it.
struct RunFile {
  std::string flag;  ///< e.g. "--summary", or "--checkpoint (ledger)"
  std::string path;
};

/// Every output of `config`: the checkpoint with its ledger and lock, the
/// metrics, the summary, the weights (and the EMA's), in that order.
std::vector<RunFile> output_files(const TrainConfig& config);

/// "<stem>.ema<ext>": where the EMA's weights go beside `weights`.
std::string ema_weights_path(const std::string& weights);

/// Throws std::invalid_argument naming both flags when two outputs of the
/// run, or an output and an input (--dataset, --eval-dataset,
/// --init-checkpoint), resolve to the same file; and naming the flag when an
/// output is a directory, its directory is missing or not writable (a probe
/// file is created and removed beside it), or --save-weights has an
/// extension the task cannot write. Touches no existing file.
void check_outputs(const TrainConfig& config);

/// The same checks for any command's files: two outputs, or an output and
/// an input, resolving to one file, and each output's directory (missing,
/// not writable, or the output itself a directory); entries with an empty
/// path are skipped.
void check_run_files(const std::vector<RunFile>& outputs,
                     const std::vector<RunFile>& inputs);

/// Removes `<file>.tmp.<pid>` left beside `file` by processes that no longer
/// run (a crash between writing and renaming). Returns how many it removed.
int remove_stale_temporaries(const std::string& file);

}  // namespace dptrain::train
