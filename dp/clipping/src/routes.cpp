#include "dptrain/dp/clipping/routes.h"

#include <ATen/Parallel.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <vector>

namespace dptrain::dp {
namespace {

constexpr const char* kCacheHeader =
    "# dptrain route cache v1: context<TAB>layer key<TAB>route";

// One line of a cache file: context, key, route.
using CacheLine = std::tuple<std::string, std::string, std::string>;

std::vector<CacheLine> read_cache(const std::string& path) {
  std::vector<CacheLine> lines;
  std::ifstream in(path);
  if (!in) return lines;  // a missing file holds no routes
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::stringstream fields_in(line);
    std::string field;
    while (std::getline(fields_in, field, '\t')) fields.push_back(field);
    if (fields.size() != 3 || fields[0].empty() || fields[1].empty() ||
        fields[2].empty()) {
      throw std::runtime_error(
          "route cache " + path + " line " + std::to_string(number) +
          ": expected three tab-separated fields (context, layer key, "
          "route), got '" +
          line + "' (delete the file to measure again)");
    }
    lines.emplace_back(fields[0], fields[1], fields[2]);
  }
  if (in.bad()) {
    throw std::runtime_error("route cache " + path + ": read failed");
  }
  return lines;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) break;
    const auto start = line.find_first_not_of(' ', colon + 1);
    if (start != std::string::npos) return line.substr(start);
  }
  return "unknown CPU";
}

}  // namespace

const char* to_string(RouteSearch search) {
  switch (search) {
    case RouteSearch::kCostModel:
      return "model";
    case RouteSearch::kMeasure:
      return "measure";
    case RouteSearch::kFixed:
      return "fixed";
  }
  return "?";
}

RouteSearch parse_route_search(const std::string& text) {
  for (auto search :
       {RouteSearch::kCostModel, RouteSearch::kMeasure, RouteSearch::kFixed}) {
    if (text == to_string(search)) return search;
  }
  throw std::invalid_argument("routes must be model, measure or fixed, got '" +
                              text + "'");
}

std::string route_context() {
  return cpu_model() + " | threads " + std::to_string(at::get_num_threads()) +
         " | libtorch " + TORCH_VERSION;
}

std::optional<std::string> RouteTable::find(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = routes_.find(key);
  if (it == routes_.end()) return std::nullopt;
  return it->second;
}

void RouteTable::insert(const std::string& key, const std::string& route) {
  std::lock_guard<std::mutex> lock(mutex_);
  routes_[key] = route;
}

std::map<std::string, std::string> RouteTable::entries() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return routes_;
}

size_t RouteTable::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return routes_.size();
}

void RouteTable::load(const std::string& path, const std::string& context) {
  const auto lines = read_cache(path);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [line_context, key, route] : lines) {
    if (line_context == context) routes_[key] = route;
  }
}

void RouteTable::save(const std::string& path,
                      const std::string& context) const {
  std::vector<CacheLine> kept;
  for (auto& line : read_cache(path)) {
    if (std::get<0>(line) != context) kept.push_back(std::move(line));
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) {
      throw std::runtime_error("route cache " + path +
                               ": cannot write the temporary file " + tmp);
    }
    out << kCacheHeader << '\n';
    for (const auto& [c, key, route] : kept) {
      out << c << '\t' << key << '\t' << route << '\n';
    }
    for (const auto& [key, route] : entries()) {
      out << context << '\t' << key << '\t' << route << '\n';
    }
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw std::runtime_error("route cache " + path + ": write failed");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("route cache " + path + ": cannot replace it");
  }
}

RoutePolicy load_route_policy(RouteSearch search, const std::string& cache_file,
                              bool write_cache) {
  RoutePolicy policy;
  policy.search = search;
  policy.table = std::make_shared<RouteTable>();
  if (!cache_file.empty()) {
    policy.table->load(cache_file, route_context());
    if (search == RouteSearch::kMeasure && write_cache) {
      policy.cache_file = cache_file;
    }
  }
  return policy;
}

}  // namespace dptrain::dp
