// Canary scores and inclusion coins as text files, one value a line.
#pragma once

#include <string>
#include <vector>

namespace dptrain::audit {

/// One finite number a line (surrounding blanks and a CR before the newline
/// are allowed; a final newline is optional). Throws std::invalid_argument
/// naming the file and the line ("scores.txt:3: expected a finite number,
/// got \"abc\"") for a line that is not one number, and naming the file when
/// it cannot be opened or holds no line.
std::vector<double> read_scores(const std::string& path);

/// One coin a line, "1" (included) or "0"; blanks as for read_scores.
/// Throws std::invalid_argument naming the file and the line otherwise.
std::vector<bool> read_inclusion(const std::string& path);

}  // namespace dptrain::audit
