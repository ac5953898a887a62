#include "dptrain/audit/score_file.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <system_error>

namespace dptrain::audit {
namespace {

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

/// Calls parse(line, number) on each line; `what` names the file's kind.
void for_each_line(
    const std::string& path, const char* what,
    const std::function<void(std::string_view, std::size_t)>& parse) {
  std::ifstream in(path);
  if (!in) {
    throw std::invalid_argument(std::string("cannot open ") + what +
                                " file \"" + path + "\"");
  }
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) parse(trim(line), ++number);
  if (in.bad()) {
    throw std::invalid_argument(std::string("cannot read ") + what +
                                " file \"" + path + "\"");
  }
  if (number == 0) {
    throw std::invalid_argument(std::string(what) + " file \"" + path +
                                "\" has no lines");
  }
}

[[noreturn]] void bad_line(const std::string& path, std::size_t number,
                           const char* expected, std::string_view text) {
  throw std::invalid_argument(path + ":" + std::to_string(number) +
                              ": expected " + expected + ", got \"" +
                              std::string(text) + "\"");
}

}  // namespace

std::vector<double> read_scores(const std::string& path) {
  std::vector<double> scores;
  for_each_line(path, "scores", [&](std::string_view text, std::size_t n) {
    double x = 0.0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, x);
    if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(x)) {
      bad_line(path, n, "a finite number", text);
    }
    scores.push_back(x);
  });
  return scores;
}

std::vector<bool> read_inclusion(const std::string& path) {
  std::vector<bool> included;
  for_each_line(path, "inclusion", [&](std::string_view text, std::size_t n) {
    if (text != "0" && text != "1") bad_line(path, n, "0 or 1", text);
    included.push_back(text == "1");
  });
  return included;
}

}  // namespace dptrain::audit
