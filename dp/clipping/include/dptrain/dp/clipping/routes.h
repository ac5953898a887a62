#pragma once
/// Route choice of the per-example rules, by measurement as cuDNN's
/// benchmark mode does it.
///
/// A rule may compute a layer's per-example norms (and the weighted sum of
/// its clipped gradients) by several exact routes: ghost norms, per-example
/// gradients by a grouped convolution, one bmm, ... (LayerRule::routes). By
/// default its cost model picks one. With RouteSearch::kMeasure the engine
/// times every route on the real tensors the first time it sees a layer
/// shape and keeps the fastest in a RouteTable, shared by the process and
/// optionally saved to a cache file, so that later steps and later runs
/// skip the search. Every route gives the same values up to rounding: the
/// choice changes the speed, never what is clipped.
///
///   auto table = std::make_shared<RouteTable>();
///   table->load("routes.tsv", route_context());      // a missing file: none
///   engine.set_route_policy({RouteSearch::kMeasure, table, "routes.tsv"});

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace dptrain::dp {

/// How the engine picks a rule's route.
enum class RouteSearch {
  /// The rules' cost models (the default): the same routes in every run.
  kCostModel,
  /// Time every route the first time a layer shape is seen (norms +
  /// weighted sum, a warm-up and RoutePolicy::repeats timed runs, the
  /// fastest kept). Routes, hence rounding, may differ between runs.
  kMeasure,
  /// Routes from the table (e.g. a cache file written by kMeasure), the
  /// cost model for shapes not in it; never times: bit-reproducible for a
  /// fixed table.
  kFixed,
};

/// "model", "measure", "fixed".
const char* to_string(RouteSearch search);
/// Parses to_string's names; throws std::invalid_argument naming the value.
RouteSearch parse_route_search(const std::string& text);

/// The machine a measured route holds for: CPU model, LibTorch's intra-op
/// thread count and LibTorch's version, e.g. "AMD EPYC 7B13 | threads 2 |
/// libtorch 1.13.1". Cache entries of another context are not used.
std::string route_context();

/// Routes by layer-call key (RouteKey in the engine: the layer's printed
/// form, its input and output shapes with the rows bucketed to a power of
/// two, K, dtype and device). Thread-safe; shared by engines.
class RouteTable {
 public:
  std::optional<std::string> find(const std::string& key) const;
  void insert(const std::string& key, const std::string& route);
  std::map<std::string, std::string> entries() const;
  size_t size() const;

  /// Adds the entries of `path` whose context is `context`. A missing file
  /// adds nothing; a malformed line throws std::runtime_error naming the
  /// file and the line.
  void load(const std::string& path, const std::string& context);
  /// Writes the table's entries under `context` to `path`, keeping the
  /// file's entries of other contexts; atomically (a temporary file, then
  /// rename). Throws std::runtime_error naming the file on failure.
  void save(const std::string& path, const std::string& context) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> routes_;
};

/// What GradientEngine::set_route_policy takes.
struct RoutePolicy {
  RouteSearch search = RouteSearch::kCostModel;
  /// Where routes are looked up and (kMeasure) stored; null: a table of the
  /// engine's own.
  std::shared_ptr<RouteTable> table;
  /// kMeasure: after each search that found a new route the table is saved
  /// here (RouteTable::save with route_context()); "" for none.
  std::string cache_file;
  /// Timed runs per route in a search (after one warm-up); the fastest
  /// counts. At least 1.
  int64_t repeats = 2;
  /// Non-empty: every call offering this route takes it, whatever `search`
  /// (tests of each route against the oracle; benchmarks of one route).
  std::string forced;
};

/// A policy for `search` with a table of its own that holds `cache_file`'s
/// entries for route_context() ("" or a missing file: none; a malformed
/// one throws as RouteTable::load). With kMeasure and `write_cache`, new
/// routes are saved back to cache_file.
RoutePolicy load_route_policy(RouteSearch search, const std::string& cache_file,
                              bool write_cache = true);

}  // namespace dptrain::dp
