// `dptrain report`: one self-contained HTML page (inline SVG charts, images
// as data URIs, no script, no network) from a run's metrics log and summary.
// Like the accountant it never sees LibTorch, so the launcher answers it at
// once (tests/layering checks it).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace dptrain::report {

/// One line of a chart: (x, y) points in order.
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

/// An inline <svg> line chart with axes, ticks, a marker at every point and
/// a legend. Series without points are left out; with no points at all the
/// chart says so. Names and labels are HTML-escaped.
std::string line_chart(const std::string& title, const std::string& x_label,
                       const std::string& y_label,
                       const std::vector<Series>& series, int width = 560,
                       int height = 320);

/// An inline <svg> bar chart: one group of bars per label, one bar per
/// series (values[s][i] for label i; NaN = no bar), y from 0 to max(1, the
/// largest value).
std::string bar_chart(const std::string& title,
                      const std::vector<std::string>& labels,
                      const std::vector<std::string>& series_names,
                      const std::vector<std::vector<double>>& values,
                      int width = 560, int height = 320);

/// RFC 4648 base64 of `bytes`.
std::string base64(const std::string& bytes);

/// `text` with &, <, >, " and ' escaped.
std::string html_escape(const std::string& text);

/// The records of a JSON-lines metrics log (`train --metrics`), in order.
/// Throws std::invalid_argument naming the file and line for a line that is
/// not a JSON object, and the file when it cannot be read.
std::vector<nlohmann::json> read_metrics(const std::string& path);

/// What a report is made of.
struct ReportInputs {
  std::string metrics;              ///< RUN.jsonl (required)
  std::string summary;              ///< the run's --summary JSON (optional)
  std::vector<std::string> images;  ///< PNG files shown (sample grids)
  std::string title;                ///< default: from the files
};

/// The page. Reads every file named; throws std::invalid_argument naming
/// the file (and line) for one that is missing, is not what it should be,
/// or for a metrics log without a record that has a step.
std::string render(const ReportInputs& inputs);

/// Writes `html` to `path` through "<path>.tmp.<pid>" renamed over it, so an
/// existing report is replaced whole or not at all. Throws
/// std::invalid_argument naming the path when it cannot be written.
void write_page(const std::string& path, const std::string& html);

}  // namespace dptrain::report
