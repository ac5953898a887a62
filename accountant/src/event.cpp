#include "dptrain/accountant/event.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>

#include "dptrain/accountant/detail/numeric.h"

namespace dptrain::accountant {

using detail::fail;
using detail::fmt;

void validate(const PoissonSampledGaussian& event) {
  const double q = event.sample_rate;
  if (!(q > 0.0 && q <= 1.0)) {
    fail("sample_rate must be in (0, 1], got " + fmt(q));
  }
  const double s = event.noise_multiplier;
  if (!(s > 0.0) || !std::isfinite(s)) {
    fail("noise_multiplier must be finite and > 0, got " + fmt(s));
  }
  if (event.steps < 0) {
    fail("steps must be >= 0, got " + std::to_string(event.steps));
  }
}

std::int64_t total_steps(const EventHistory& events) {
  std::int64_t total = 0;
  for (const auto& e : events) {
    if (e.steps > std::numeric_limits<std::int64_t>::max() - total) {
      fail("total steps overflow a 64-bit integer");
    }
    total += e.steps;
  }
  return total;
}

void append_event(EventHistory& events, const PoissonSampledGaussian& event) {
  validate(event);
  if (!events.empty() && events.back().sample_rate == event.sample_rate &&
      events.back().noise_multiplier == event.noise_multiplier &&
      events.back().steps <=
          std::numeric_limits<std::int64_t>::max() - event.steps) {
    events.back().steps += event.steps;
    return;
  }
  events.push_back(event);
}

RateAndSteps rate_and_steps(const EpochSchedule& s) {
  if (s.dataset_size <= 0) {
    fail("dataset_size must be > 0, got " + std::to_string(s.dataset_size));
  }
  if (s.batch_size <= 0 || s.batch_size > s.dataset_size) {
    fail("batch_size must be in [1, dataset_size=" +
         std::to_string(s.dataset_size) + "], got " +
         std::to_string(s.batch_size));
  }
  if (!(s.epochs >= 0.0) || !std::isfinite(s.epochs)) {
    fail("epochs must be finite and >= 0, got " + fmt(s.epochs));
  }
  RateAndSteps out;
  out.sample_rate =
      static_cast<double>(s.batch_size) / static_cast<double>(s.dataset_size);
  const long double exact = static_cast<long double>(s.epochs) *
                            static_cast<long double>(s.dataset_size) /
                            static_cast<long double>(s.batch_size);
  if (exact > 9.0e18L)
    fail("epochs=" + fmt(s.epochs) + " gives too many steps");
  // E·N/B that is an integer up to rounding of E (0.1·1000/10) is not rounded
  // up to the next step.
  const long double nearest = std::round(exact);
  const bool is_integer = std::fabs(exact - nearest) <= 1e-9L * (1.0L + exact);
  out.steps =
      static_cast<std::int64_t>(is_integer ? nearest : std::ceil(exact));
  return out;
}

// --------------------------------------------------------------------------
// JSON: a writer for our one schema and a small strict parser for it.

namespace {

std::string num(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

struct Value {
  enum class Type {
    kNull,
    kBool,
    kNumber,
    kString,
    kArray,
    kObject
  } type = Type::kNull;
  double number = 0.0;
  std::string text;  // string value, or the number's literal text
  bool boolean = false;
  std::vector<Value> items;
  std::map<std::string, Value> fields;
};

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Value parse_document() {
    Value v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) error("trailing characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("accountant events JSON: " + what + " at offset " +
         std::to_string(pos_));
  }
  void skip_ws() {
    while (pos_ < s_.size() &&
           std::isspace(static_cast<unsigned char>(s_[pos_]))) {
      ++pos_;
    }
  }
  bool consume(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!consume(c)) error(std::string("expected '") + c + "'");
  }
  bool literal(const char* word) {
    const std::string w(word);
    if (s_.compare(pos_, w.size(), w) == 0) {
      pos_ += w.size();
      return true;
    }
    return false;
  }

  Value parse_value(int depth) {
    if (depth > 32) error("nesting too deep");
    skip_ws();
    if (pos_ >= s_.size()) error("unexpected end of input");
    Value v;
    const char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      v.type = Value::Type::kObject;
      if (consume('}')) return v;
      do {
        skip_ws();
        if (pos_ >= s_.size() || s_[pos_] != '"') error("expected a key");
        std::string key = parse_string();
        expect(':');
        if (v.fields.count(key) != 0) error("duplicate key \"" + key + "\"");
        v.fields.emplace(key, parse_value(depth + 1));
      } while (consume(','));
      expect('}');
    } else if (c == '[') {
      ++pos_;
      v.type = Value::Type::kArray;
      if (consume(']')) return v;
      do {
        v.items.push_back(parse_value(depth + 1));
      } while (consume(','));
      expect(']');
    } else if (c == '"') {
      v.type = Value::Type::kString;
      v.text = parse_string();
    } else if (literal("true")) {
      v.type = Value::Type::kBool;
      v.boolean = true;
    } else if (literal("false")) {
      v.type = Value::Type::kBool;
    } else if (literal("null")) {
      v.type = Value::Type::kNull;
    } else if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) {
      v.type = Value::Type::kNumber;
      const std::size_t start = pos_;
      while (pos_ < s_.size() &&
             (std::isdigit(static_cast<unsigned char>(s_[pos_])) ||
              std::string("+-.eE").find(s_[pos_]) != std::string::npos)) {
        ++pos_;
      }
      v.text = s_.substr(start, pos_ - start);
      char* end = nullptr;
      v.number = std::strtod(v.text.c_str(), &end);
      if (end != v.text.c_str() + v.text.size()) {
        pos_ = start;
        error("malformed number \"" + v.text + "\"");
      }
    } else {
      error(std::string("unexpected character '") + c + "'");
    }
    return v;
  }

  std::string parse_string() {
    ++pos_;  // opening quote
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (c == '\\') {
        if (pos_ >= s_.size()) break;
        const char e = s_[pos_++];
        switch (e) {
          case '"':
          case '\\':
          case '/':
            out += e;
            break;
          case 'n':
            out += '\n';
            break;
          case 't':
            out += '\t';
            break;
          case 'r':
            out += '\r';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          default:
            error("unsupported escape in string");
        }
      } else {
        out += c;
      }
    }
    if (pos_ >= s_.size()) error("unterminated string");
    ++pos_;  // closing quote
    return out;
  }

  const std::string& s_;
  std::size_t pos_ = 0;
};

// `key` is a C string, not a std::string: a temporary std::string argument
// makes GCC 14's -Wdangling-reference flag every reference to the result.
const Value& field(const Value& obj, const char* key, Value::Type type,
                   const std::string& where) {
  auto it = obj.fields.find(key);
  if (it == obj.fields.end()) {
    fail("accountant events JSON: " + where + " has no \"" + key + "\"");
  }
  if (it->second.type != type) {
    fail(std::string("accountant events JSON: \"") + key + "\" in " + where +
         " has the wrong type");
  }
  return it->second;
}

constexpr const char* kFormat = "dptrain.accountant.events";

}  // namespace

std::string to_json(const EventHistory& events) {
  std::string out =
      std::string("{\"format\":\"") + kFormat +
      "\",\"version\":1,\"adjacency\":\"add_remove\",\"events\":[";
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if (i != 0) out += ',';
    out += "{\"type\":\"poisson_sampled_gaussian\",\"sample_rate\":" +
           num(e.sample_rate) +
           ",\"noise_multiplier\":" + num(e.noise_multiplier) +
           ",\"steps\":" + std::to_string(e.steps) + "}";
  }
  out += "]}";
  return out;
}

EventHistory events_from_json(const std::string& json) {
  const Value doc = Parser(json).parse_document();
  if (doc.type != Value::Type::kObject) {
    fail("accountant events JSON: the document is not an object");
  }
  const std::string top = "the document";
  const auto& format = field(doc, "format", Value::Type::kString, top).text;
  if (format != kFormat) {
    fail("accountant events JSON: format must be \"" + std::string(kFormat) +
         "\", got \"" + format + "\"");
  }
  const double version =
      field(doc, "version", Value::Type::kNumber, top).number;
  if (version != 1.0) {
    fail("accountant events JSON: unsupported version " + fmt(version));
  }
  const auto& adjacency =
      field(doc, "adjacency", Value::Type::kString, top).text;
  if (adjacency != "add_remove") {
    fail("accountant events JSON: adjacency must be \"add_remove\", got \"" +
         adjacency + "\"");
  }
  EventHistory events;
  const auto& list = field(doc, "events", Value::Type::kArray, top).items;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = "events[" + std::to_string(i) + "]";
    const Value& ev = list[i];
    if (ev.type != Value::Type::kObject) {
      fail("accountant events JSON: " + where + " is not an object");
    }
    const auto& type = field(ev, "type", Value::Type::kString, where).text;
    if (type != "poisson_sampled_gaussian") {
      fail("accountant events JSON: " + where + " has unknown type \"" + type +
           "\"");
    }
    PoissonSampledGaussian e;
    e.sample_rate =
        field(ev, "sample_rate", Value::Type::kNumber, where).number;
    e.noise_multiplier =
        field(ev, "noise_multiplier", Value::Type::kNumber, where).number;
    const Value& steps = field(ev, "steps", Value::Type::kNumber, where);
    if (steps.text.find_first_of(".eE") != std::string::npos ||
        steps.number > 9.0e18 || steps.number < -9.0e18) {
      fail("accountant events JSON: " + where +
           " steps must be an integer, got " + steps.text);
    }
    e.steps = std::strtoll(steps.text.c_str(), nullptr, 10);
    try {
      validate(e);
    } catch (const std::invalid_argument& err) {
      fail("accountant events JSON: " + where + ": " + err.what());
    }
    events.push_back(e);
  }
  return events;
}

}  // namespace dptrain::accountant
