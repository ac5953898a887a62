#include "dptrain/report/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

namespace dptrain::report {
namespace {

using nlohmann::json;

constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c",
                                    "#9467bd", "#ff7f0e", "#8c564b"};
constexpr int kColourCount = 6;

std::string number(double v, int digits = 4) {
  if (!std::isfinite(v)) return "n/a";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*g", digits, v);
  return buffer;
}

std::string fixed(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

// Tick positions: 1, 2 or 5 times a power of ten, about `target` of them.
std::vector<double> ticks(double lo, double hi, int target = 5) {
  const double span = hi - lo;
  const double raw = span / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (span / step <= target + 1) break;
  }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9;
       t += step) {
    out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return out;
}

std::pair<double, double> padded_range(double lo, double hi) {
  if (!(hi > lo)) {
    const double pad = lo == 0.0 ? 1.0 : std::abs(lo) * 0.1;
    return {lo - pad, hi + pad};
  }
  const double pad = (hi - lo) * 0.05;
  return {lo - pad, hi + pad};
}

struct Frame {
  int width, height;
  int left = 64, right = 16, top = 34, bottom = 64;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  double x(double v) const {
    return left + (v - x0) / (x1 - x0) * (width - left - right);
  }
  double y(double v) const {
    return height - bottom - (v - y0) / (y1 - y0) * (height - top - bottom);
  }
};

std::string svg_open(const std::string& title, int width, int height) {
  std::ostringstream s;
  s << "<svg class=\"chart\" width=\"" << width << "\" height=\"" << height
    << "\" viewBox=\"0 0 " << width << " " << height
    << "\" role=\"img\" aria-label=\"" << html_escape(title) << "\">"
    << "<text x=\"" << width / 2 << "\" y=\"20\" text-anchor=\"middle\" "
    << "class=\"title\">" << html_escape(title) << "</text>";
  return s.str();
}

void axes(std::ostringstream& s, const Frame& f, const std::string& x_label,
          const std::string& y_label, bool x_ticks) {
  const double xa = f.left, xb = f.width - f.right;
  const double ya = f.top, yb = f.height - f.bottom;
  for (double t : ticks(f.y0, f.y1)) {
    s << "<line class=\"grid\" x1=\"" << fixed(xa) << "\" x2=\"" << fixed(xb)
      << "\" y1=\"" << fixed(f.y(t)) << "\" y2=\"" << fixed(f.y(t)) << "\"/>"
      << "<text class=\"tick\" x=\"" << fixed(xa - 6) << "\" y=\""
      << fixed(f.y(t) + 4) << "\" text-anchor=\"end\">" << number(t)
      << "</text>";
  }
  if (x_ticks) {
    for (double t : ticks(f.x0, f.x1)) {
      s << "<text class=\"tick\" x=\"" << fixed(f.x(t)) << "\" y=\""
        << fixed(yb + 16) << "\" text-anchor=\"middle\">" << number(t)
        << "</text>";
    }
  }
  s << "<line class=\"axis\" x1=\"" << fixed(xa) << "\" x2=\"" << fixed(xb)
    << "\" y1=\"" << fixed(yb) << "\" y2=\"" << fixed(yb) << "\"/>"
    << "<line class=\"axis\" x1=\"" << fixed(xa) << "\" x2=\"" << fixed(xa)
    << "\" y1=\"" << fixed(ya) << "\" y2=\"" << fixed(yb) << "\"/>"
    << "<text class=\"label\" x=\"" << fixed((xa + xb) / 2) << "\" y=\""
    << fixed(yb + 34) << "\" text-anchor=\"middle\">" << html_escape(x_label)
    << "</text>"
    << "<text class=\"label\" transform=\"translate(14," << fixed((ya + yb) / 2)
    << ") rotate(-90)\" text-anchor=\"middle\">" << html_escape(y_label)
    << "</text>";
}

void legend(std::ostringstream& s, const Frame& f,
            const std::vector<std::string>& names) {
  double x = f.left;
  const double y = f.height - 12;
  for (std::size_t i = 0; i < names.size(); ++i) {
    s << "<rect x=\"" << fixed(x) << "\" y=\"" << fixed(y - 9)
      << "\" width=\"10\" height=\"10\" fill=\"" << kColours[i % kColourCount]
      << "\"/><text class=\"legend\" x=\"" << fixed(x + 14) << "\" y=\""
      << fixed(y) << "\">" << html_escape(names[i]) << "</text>";
    x += 24 + 6.5 * static_cast<double>(names[i].size());
  }
}

std::string read_text(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::invalid_argument(std::string(what) + " '" + path +
                                "': cannot be read (missing?)");
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const json* find(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

double number_or_nan(const json& v) {
  return v.is_number() ? v.get<double>()
                       : std::numeric_limits<double>::quiet_NaN();
}

// One row of the privacy table when the summary (or its plan) has `key`.
void privacy_row(std::ostringstream& s, const json& summary, const char* key,
                 const std::string& label) {
  const json* v = find(summary, key);
  const json* plan = find(summary, "plan");
  if (v == nullptr && plan != nullptr) v = find(*plan, key);
  if (v == nullptr) return;
  const std::string text = v->is_string()   ? v->get<std::string>()
                           : v->is_number() ? number(v->get<double>(), 6)
                                            : v->dump();
  s << "<tr><th>" << html_escape(label) << "</th><td>" << html_escape(text)
    << "</td></tr>";
}

std::string privacy_section(const json& summary) {
  std::ostringstream s;
  s << "<section><h2>Privacy statement</h2>";
  if (summary.is_null()) {
    s << "<p class=\"warn\">No summary given (--summary): the privacy "
         "guarantee of this run is not shown. The metrics log alone does "
         "not state it.</p></section>";
    return s.str();
  }
  const json* eps = find(summary, "epsilon");
  const json* delta = find(summary, "delta");
  if (eps != nullptr && delta != nullptr) {
    s << "<p class=\"guarantee\">(&epsilon;, &delta;) = ("
      << number(number_or_nan(*eps), 6) << ", " << number(number_or_nan(*delta))
      << ")-differential privacy</p>";
  }
  s << "<table>";
  static constexpr const char* kRows[][2] = {
      {"privacy_unit", "privacy unit"},
      {"adjacency", "adjacency"},
      {"sampler", "sampler"},
      {"sample_rate", "sample rate q"},
      {"noise_multiplier", "noise multiplier \xcf\x83"},
      {"max_grad_norm", "clipping norm C"},
      {"steps_accounted", "steps accounted"},
      {"accountant", "accountant"},
      {"epsilon_rdp", "\xce\xb5 (RDP)"},
      {"epsilon_prv_upper", "\xce\xb5 (PRV, upper)"},
      {"delta", "\xce\xb4"},
      {"target_epsilon", "target \xce\xb5"}};
  for (const auto& row : kRows) privacy_row(s, summary, row[0], row[1]);
  s << "</table>";
  const json* sampler = find(summary, "sampler");
  if (sampler != nullptr && sampler->is_string() &&
      sampler->get<std::string>() != "poisson") {
    s << "<p class=\"warn\">Sampler "
      << html_escape(sampler->get<std::string>())
      << ": the accountant's \xce\xb5 assumes Poisson sampling, which this run "
         "did not use (see the summary).</p>";
  }
  const json* stopped = find(summary, "stopped_by_budget");
  if (stopped != nullptr && stopped->is_boolean() && stopped->get<bool>()) {
    s << "<p>The run stopped early: its next step would have spent more than "
         "the target \xce\xb5.</p>";
  }
  const json* seeded = find(summary, "seeded");
  if (seeded != nullptr && seeded->is_boolean() && seeded->get<bool>()) {
    s << "<p class=\"warn\">Seeded noise: the run is reproducible and NOT "
         "fit for a release.</p>";
  }
  for (const char* key : {"publish", "post_processing", "privacy"}) {
    const json* text = find(summary, key);
    if (text != nullptr && text->is_string()) {
      s << "<p>" << html_escape(text->get<std::string>()) << "</p>";
    }
  }
  s << "<p>Curves marked (non-private) are computed on the private training "
       "data without noise: they are for the person who trains, not for "
       "publication.</p></section>";
  return s.str();
}

bool is_accuracy_key(const std::string& k) {
  return k.size() >= 8 && k.compare(k.size() - 8, 8, "accuracy") == 0;
}
bool is_loss_key(const std::string& k) {
  return k.find("loss") != std::string::npos ||
         k.find("perplexity") != std::string::npos;
}

std::string series_name(const std::string& key) {
  std::string name = key;
  std::replace(name.begin(), name.end(), '_', ' ');
  const std::string np = " nonprivate";
  const auto at = name.find(np);
  if (at != std::string::npos) name = name.substr(0, at) + " (non-private)";
  return name;
}

// Series of `records` keyed like `select`, against "step" (or against
// `x_key`).
std::vector<Series> collect(const std::vector<json>& records,
                            bool (*select)(const std::string&),
                            const char* x_key = "step") {
  std::map<std::string, Series> by_key;
  std::vector<std::string> order;
  for (const auto& r : records) {
    const json* x = find(r, x_key);
    if (x == nullptr || !x->is_number()) continue;
    for (const auto& [key, value] : r.items()) {
      if (!value.is_number() || !select(key)) continue;
      if (by_key.count(key) == 0) {
        order.push_back(key);
        by_key[key].name = series_name(key);
      }
      by_key[key].points.emplace_back(x->get<double>(), value.get<double>());
    }
  }
  std::vector<Series> out;
  for (const auto& k : order) out.push_back(by_key[k]);
  return out;
}

std::string per_class_section(const json& summary) {
  std::ostringstream s;
  auto bars = [&](const char* key, const char* ema_key, const char* title,
                  const std::vector<std::string>* names) {
    const json* values = find(summary, key);
    if (values == nullptr || !values->is_array() || values->empty()) return;
    std::vector<std::vector<double>> rows(1);
    std::vector<std::string> series = {"last iterate"};
    for (const auto& v : *values) rows[0].push_back(number_or_nan(v));
    const json* ema = ema_key ? find(summary, ema_key) : nullptr;
    if (ema != nullptr && ema->is_array() && ema->size() == values->size()) {
      rows.emplace_back();
      series.emplace_back("EMA");
      for (const auto& v : *ema) rows.back().push_back(number_or_nan(v));
    }
    std::vector<std::string> labels;
    for (std::size_t i = 0; i < values->size(); ++i) {
      labels.push_back(names != nullptr && i < names->size()
                           ? (*names)[i]
                           : std::to_string(i));
    }
    s << bar_chart(title, labels, series, rows);
  };
  // Classes kept by --classes show under their original numbers.
  std::vector<std::string> class_names;
  const json* config = find(summary, "config");
  const json* classes = config != nullptr ? find(*config, "classes") : nullptr;
  if (classes != nullptr && classes->is_array()) {
    for (const auto& c : *classes) class_names.push_back(c.dump());
  }
  bars("per_class_accuracy", "ema_per_class_accuracy",
       "Test accuracy per class", class_names.empty() ? nullptr : &class_names);
  bars("per_group_accuracy", "ema_per_group_accuracy",
       "Test accuracy per group", nullptr);
  const std::string body = s.str();
  return body.empty() ? ""
                      : "<section><h2>Per class and group</h2><div "
                        "class=\"charts\">" +
                            body + "</div></section>";
}

std::string run_line(const json& summary) {
  const json* config = find(summary, "config");
  if (config == nullptr) return "";
  std::ostringstream s;
  for (const char* key : {"task", "model", "dataset", "optimizer"}) {
    const json* v = find(*config, key);
    if (v != nullptr && v->is_string()) {
      s << "<span><b>" << key << "</b> " << html_escape(v->get<std::string>())
        << "</span> ";
    }
  }
  for (const char* key : {"train_examples", "test_accuracy",
                          "ema_test_accuracy", "wall_seconds"}) {
    const json* v = find(summary, key);
    if (v != nullptr && v->is_number()) {
      s << "<span><b>" << series_name(key) << "</b> "
        << number(v->get<double>(), 6) << "</span> ";
    }
  }
  return "<p class=\"run\">" + s.str() + "</p>";
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string line_chart(const std::string& title, const std::string& x_label,
                       const std::string& y_label,
                       const std::vector<Series>& series, int width,
                       int height) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0,
         y1 = -x0;
  std::vector<const Series*> drawn;
  for (const auto& s : series) {
    bool any = false;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      any = true;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
    if (any) drawn.push_back(&s);
  }
  std::ostringstream s;
  s << svg_open(title, width, height);
  if (drawn.empty()) {
    s << "<text class=\"label\" x=\"" << width / 2 << "\" y=\"" << height / 2
      << "\" text-anchor=\"middle\">no data</text></svg>";
    return s.str();
  }
  Frame f{width, height};
  std::tie(f.x0, f.x1) = padded_range(x0, x1);
  std::tie(f.y0, f.y1) = padded_range(y0, y1);
  axes(s, f, x_label, y_label, true);
  std::vector<std::string> names;
  for (std::size_t i = 0; i < drawn.size(); ++i) {
    const char* colour = kColours[i % kColourCount];
    std::ostringstream points;
    std::ostringstream markers;
    for (const auto& [x, y] : drawn[i]->points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      points << fixed(f.x(x)) << "," << fixed(f.y(y)) << " ";
      markers << "<circle cx=\"" << fixed(f.x(x)) << "\" cy=\"" << fixed(f.y(y))
              << "\" r=\"3\" fill=\"" << colour << "\"><title>"
              << html_escape(drawn[i]->name) << ": " << number(x) << ", "
              << number(y) << "</title></circle>";
    }
    s << "<polyline fill=\"none\" stroke=\"" << colour
      << "\" stroke-width=\"2\" points=\"" << points.str() << "\"/>"
      << markers.str();
    names.push_back(drawn[i]->name);
  }
  legend(s, f, names);
  s << "</svg>";
  return s.str();
}

std::string bar_chart(const std::string& title,
                      const std::vector<std::string>& labels,
                      const std::vector<std::string>& series_names,
                      const std::vector<std::vector<double>>& values, int width,
                      int height) {
  std::ostringstream s;
  s << svg_open(title, width, height);
  double top = 1.0;
  for (const auto& row : values) {
    for (double v : row) {
      if (std::isfinite(v)) top = std::max(top, v);
    }
  }
  Frame f{width, height};
  f.x0 = 0;
  f.x1 = std::max<double>(1.0, static_cast<double>(labels.size()));
  f.y0 = 0;
  f.y1 = top;
  axes(s, f, "", "", false);
  const double slot = (f.x(1) - f.x(0));
  const double bar = slot * 0.8 / std::max<std::size_t>(values.size(), 1);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    for (std::size_t k = 0; k < values.size(); ++k) {
      if (i >= values[k].size() || !std::isfinite(values[k][i])) continue;
      const double x = f.x(static_cast<double>(i)) + slot * 0.1 + bar * k;
      const double y = f.y(values[k][i]);
      s << "<rect x=\"" << fixed(x) << "\" y=\"" << fixed(y) << "\" width=\""
        << fixed(bar) << "\" height=\"" << fixed(f.y(0) - y) << "\" fill=\""
        << kColours[k % kColourCount] << "\"><title>" << html_escape(labels[i])
        << " " << html_escape(k < series_names.size() ? series_names[k] : "")
        << ": " << number(values[k][i]) << "</title></rect>";
    }
    s << "<text class=\"tick\" x=\"" << fixed(f.x(i + 0.5)) << "\" y=\""
      << fixed(f.y(0) + 16) << "\" text-anchor=\"middle\">"
      << html_escape(labels[i]) << "</text>";
  }
  legend(s, f, series_names);
  s << "</svg>";
  return s.str();
}

std::vector<json> read_metrics(const std::string& path) {
  std::istringstream in(read_text(path, "metrics"));
  std::vector<json> records;
  std::string line;
  std::size_t number_of_line = 0;
  while (std::getline(in, line)) {
    ++number_of_line;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json record;
    try {
      record = json::parse(line);
    } catch (const json::parse_error& e) {
      throw std::invalid_argument("metrics '" + path + "' line " +
                                  std::to_string(number_of_line) +
                                  ": not JSON (" + e.what() + ")");
    }
    if (!record.is_object()) {
      throw std::invalid_argument("metrics '" + path + "' line " +
                                  std::to_string(number_of_line) +
                                  ": not a JSON object");
    }
    records.push_back(std::move(record));
  }
  return records;
}

std::string render(const ReportInputs& inputs) {
  const auto records = read_metrics(inputs.metrics);
  const bool any_step =
      std::any_of(records.begin(), records.end(), [](const json& r) {
        const json* s = find(r, "step");
        return s != nullptr && s->is_number();
      });
  if (!any_step) {
    throw std::invalid_argument("metrics '" + inputs.metrics +
                                "': no record with a \"step\" (is it the "
                                "--metrics log of a run?)");
  }
  json summary;
  if (!inputs.summary.empty()) {
    const std::string text = read_text(inputs.summary, "--summary");
    try {
      summary = json::parse(text);
    } catch (const json::parse_error& e) {
      throw std::invalid_argument("--summary '" + inputs.summary +
                                  "': not JSON (" + e.what() + ")");
    }
    if (!summary.is_object()) {
      throw std::invalid_argument("--summary '" + inputs.summary +
                                  "': not a JSON object");
    }
  }
  std::vector<std::string> images;
  for (const auto& path : inputs.images) {
    const std::string bytes = read_text(path, "--image");
    if (bytes.size() < 8 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) {
      throw std::invalid_argument("--image '" + path + "': not a PNG file");
    }
    images.push_back(base64(bytes));
  }
  const std::string title =
      inputs.title.empty() ? "dptrain run: " + inputs.metrics : inputs.title;

  std::ostringstream page;
  page << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       << "<title>" << html_escape(title) << "</title><style>"
       << "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}"
       << "h1{font-size:22px}h2{font-size:18px;margin-top:28px}"
       << ".charts{display:flex;flex-wrap:wrap;gap:16px}"
       << ".chart{border:1px solid #ddd;background:#fff}"
       << ".title{font-size:14px;font-weight:bold}.tick{font-size:11px;fill:#"
          "555}"
       << ".label{font-size:12px}.legend{font-size:11px}"
       << ".grid{stroke:#eee}.axis{stroke:#333}"
       << "table{border-collapse:collapse}th,td{text-align:left;padding:3px "
          "10px;border-bottom:1px solid #eee}"
       << ".guarantee{font-size:18px;font-weight:bold}"
       << ".warn{color:#b00;font-weight:bold}.run span{margin-right:14px}"
       << "img{image-rendering:pixelated;border:1px solid #ddd;max-width:100%}"
       << "</style></head><body>\n<h1>" << html_escape(title) << "</h1>"
       << run_line(summary) << privacy_section(summary);

  page << "<section><h2>Training</h2><div class=\"charts\">"
       << line_chart(
              "Privacy spent", "step", "\xce\xb5",
              collect(records,
                      [](const std::string& k) { return k == "epsilon"; }))
       << line_chart("Accuracy", "step", "accuracy",
                     collect(records, is_accuracy_key))
       << line_chart("Loss", "step", "loss", collect(records, is_loss_key))
       << line_chart("Accuracy against privacy spent", "\xce\xb5", "accuracy",
                     collect(
                         records,
                         [](const std::string& k) {
                           return is_accuracy_key(k) &&
                                  k.find("nonprivate") == std::string::npos;
                         },
                         "epsilon"))
       << "</div></section>";
  page << per_class_section(summary);
  if (!images.empty()) {
    page << "<section><h2>Samples</h2>";
    for (std::size_t i = 0; i < images.size(); ++i) {
      page << "<figure><img alt=\"" << html_escape(inputs.images[i])
           << "\" src=\"data:image/png;base64," << images[i]
           << "\"><figcaption>" << html_escape(inputs.images[i])
           << "</figcaption></figure>";
    }
    page << "</section>";
  }
  page << "<footer><p>Made by <code>dptrain report</code> from "
       << html_escape(inputs.metrics)
       << (inputs.summary.empty() ? "" : " and " + html_escape(inputs.summary))
       << " (" << records.size() << " records).</p></footer></body></html>\n";
  return page.str();
}

void write_page(const std::string& path, const std::string& html) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << html;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw std::invalid_argument("--out '" + path + "': cannot write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::invalid_argument("--out '" + path + "': cannot rename " + tmp +
                                " over it");
  }
}

}  // namespace dptrain::report
