// Reads tests/accountant/reference/*.csv (values from dp_accounting, Opacus
// and prv_accountant; see that folder's README) for the accountant tests.
#pragma once

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dptrain::accountant::testing {

/// One CSV row, by column name.
using Row = std::map<std::string, std::string>;

/// The folder of the tables: $DPTRAIN_SOURCE_DIR (set by ctest), else the
/// source tree the binary was built from.
inline std::string reference_dir() {
  const char* env = std::getenv("DPTRAIN_SOURCE_DIR");
  const std::string root = env != nullptr ? env : DPTRAIN_TEST_SOURCE_DIR;
  return root + "/tests/accountant/reference/";
}

inline std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      out.push_back(cell);
      cell.clear();
    } else {
      cell += c;
    }
  }
  out.push_back(cell);
  return out;
}

/// Rows of the named table. Quoted cells may span lines (the `impl` column
/// of some rows does). Throws std::runtime_error naming the path when the
/// file is missing or has no rows, so a lost table fails the test (gtest
/// reports the message) instead of passing with nothing checked.
inline std::vector<Row> read_table(const std::string& name) {
  const std::string path = reference_dir() + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("reference table not found: " + path);
  std::vector<Row> rows;
  std::string line;
  // The tables have CRLF line ends.
  auto chomp = [](std::string& l) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
  };
  std::getline(in, line);
  chomp(line);
  const std::vector<std::string> header = split_csv_line(line);
  std::string record;
  while (std::getline(in, line)) {
    chomp(line);
    record += record.empty() ? line : "\n" + line;
    std::size_t quotes = 0;
    for (char c : record) quotes += c == '"';
    if (quotes % 2 != 0) continue;  // a quoted cell goes on
    const std::vector<std::string> cells = split_csv_line(record);
    record.clear();
    Row row;
    for (std::size_t i = 0; i < header.size() && i < cells.size(); ++i) {
      row[header[i]] = cells[i];
    }
    rows.push_back(row);
  }
  if (rows.empty()) {
    throw std::runtime_error("reference table has no rows: " + path);
  }
  return rows;
}

/// The rows of the named table whose `impl` column is `impl` (the library
/// that computed them), in table order; throws as read_table does.
inline std::vector<Row> rows_of(const std::string& name,
                                const std::string& impl) {
  std::vector<Row> out;
  for (const Row& r : read_table(name)) {
    if (r.at("impl") == impl) out.push_back(r);
  }
  return out;
}

inline double num(const Row& row, const std::string& key) {
  return std::stod(row.at(key));
}

}  // namespace dptrain::accountant::testing

// The accountant tests read the tables by these names.
namespace dptrain::accountant {
using testing::num;
using testing::Row;
using testing::rows_of;
}  // namespace dptrain::accountant
