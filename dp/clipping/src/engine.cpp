#include "dptrain/dp/clipping/engine.h"

#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "dptrain/dp/clipping/parameter_groups.h"
#include "dptrain/dp/clipping/validation.h"
#include "dptrain/dp/layers/autocast.h"

namespace dptrain::dp {
namespace {

// Tells the observer (if any) that a phase runs for the scope's lifetime.
class PhaseScope {
 public:
  PhaseScope(EngineObserver* observer, EnginePhase phase)
      : observer_(observer), phase_(phase) {
    if (observer_ != nullptr) observer_->phase_begin(phase_);
  }
  ~PhaseScope() {
    if (observer_ != nullptr) observer_->phase_end(phase_);
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  EngineObserver* observer_;
  EnginePhase phase_;
};

// The key of a call in a RouteTable: the layer as printed (type and
// options), the input's and output gradient's shapes with the rows bucketed
// to the next power of two (a Poisson batch varies from step to step), K,
// dtype and device. No tab or newline (the cache file's separators).
std::string route_key(const LayerCall& call, int64_t group_size) {
  std::ostringstream os;
  call.layer->pretty_print(os);
  auto shape = [&os](const char* name, const torch::Tensor& t) {
    os << ' ' << name << '[';
    for (int64_t i = 0; i < t.dim(); ++i) {
      if (i == 0) {
        int64_t bucket = 1;
        while (bucket < t.size(0)) bucket *= 2;
        os << "N<=" << bucket;
      } else {
        os << ',' << t.size(i);
      }
    }
    os << ']';
  };
  shape("in", call.input);
  shape("out", call.grad_output);
  os << " K=" << group_size << ' ' << call.grad_output.dtype() << ' '
     << call.grad_output.device().type();
  std::string key = os.str();
  std::replace(key.begin(), key.end(), '\t', ' ');
  std::replace(key.begin(), key.end(), '\n', ' ');
  return key;
}

// Runs `on_grad` on the gradient of one output of a graph node, when the
// backward reaches the node, while `*active` (pass 1 of two-pass clipping).
class OutputGradHook final : public torch::autograd::FunctionPreHook {
 public:
  OutputGradHook(uint32_t output_nr, std::shared_ptr<bool> active,
                 std::function<void(const torch::Tensor&)> on_grad)
      : output_nr_(output_nr),
        active_(std::move(active)),
        on_grad_(std::move(on_grad)) {}
  torch::autograd::variable_list operator()(
      const torch::autograd::variable_list& grads) override {
    if (*active_ && output_nr_ < grads.size() && grads[output_nr_].defined()) {
      on_grad_(grads[output_nr_]);
    }
    return grads;
  }

 private:
  uint32_t output_nr_;
  std::shared_ptr<bool> active_;
  std::function<void(const torch::Tensor&)> on_grad_;
};

// Which calls' output gradients the backward must capture (return): those
// whose grad_fn reaches no other call's grad_fn. Every other call's grad_fn
// lies on a path to a captured one, so the backward executes it and its
// pre-hook sees the gradient as it arrives; a captured call's grad_fn reaches
// no target, so it is never executed and its gradient comes from what execute
// returns. Capturing only these keeps execute from holding every output
// gradient to its end (it returns all it captured at once).
std::vector<bool> captured_calls(const std::vector<LayerCall>& calls) {
  using torch::autograd::Node;
  std::unordered_set<const Node*> layer_nodes;
  for (const auto& call : calls) {
    if (call.output_edge.function) {
      layer_nodes.insert(call.output_edge.function.get());
    }
  }
  // reaches[n]: some node strictly below n is a layer call's grad_fn.
  // Iterative post-order over the (acyclic) graph below the layer nodes.
  std::unordered_map<const Node*, bool> reaches;
  std::vector<std::pair<Node*, size_t>> stack;
  for (const auto& call : calls) {
    Node* start = call.output_edge.function.get();
    if (start == nullptr || reaches.count(start) != 0) continue;
    stack.emplace_back(start, 0);
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      const auto& edges = node->next_edges();
      if (next < edges.size()) {
        Node* child = edges[next++].function.get();
        if (child != nullptr && reaches.count(child) == 0) {
          stack.emplace_back(child, 0);
        }
        continue;
      }
      bool below = false;
      for (const auto& edge : edges) {
        const Node* child = edge.function.get();
        if (child != nullptr &&
            (layer_nodes.count(child) != 0 || reaches.at(child))) {
          below = true;
          break;
        }
      }
      reaches[node] = below;
      stack.pop_back();
    }
  }
  std::vector<bool> captured(calls.size(), false);
  for (size_t c = 0; c < calls.size(); ++c) {
    const Node* fn = calls[c].output_edge.function.get();
    captured[c] = fn != nullptr && !reaches.at(fn);
  }
  return captured;
}

// The backward of `total` (grad mode as the caller set it) to the calls'
// output edges, without weight gradients: on_grad[c](G) runs once for each
// call c that has one and gets a defined gradient, as soon as the gradient
// arrives (a pre-hook on the call's grad_fn) or, for a captured call
// (captured_calls), when execute returns. An exception from on_grad is
// rethrown after the backward. Clears every call's output_edge.
void backward_to_calls(
    const torch::Tensor& total, std::vector<LayerCall>& calls,
    const std::vector<std::function<void(const torch::Tensor&)>>& on_grad,
    bool keep_graph) {
  std::optional<std::exception_ptr> failure;
  std::vector<bool> done(calls.size(), false);
  // Autograd may run nodes of different devices on different threads: one
  // call's on_grad at a time.
  std::mutex mutex;
  auto run = [&](size_t c, const torch::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex);
    if (failure || done[c] || !on_grad[c] || !grad.defined()) return;
    done[c] = true;
    try {
      torch::NoGradGuard no_grad;
      on_grad[c](grad);
    } catch (...) {
      failure = std::current_exception();
    }
  };
  const auto captured = captured_calls(calls);
  // The hooks stay on the graph's nodes; after this backward (however it
  // ends) they do nothing, so a later backward through a node the caller
  // still holds (a second pass) never reaches this call's state.
  auto active = std::make_shared<bool>(true);
  struct Deactivate {
    std::shared_ptr<bool> flag;
    ~Deactivate() { *flag = false; }
  } deactivate{active};
  torch::autograd::edge_list targets;
  std::vector<size_t> target_call;
  for (size_t c = 0; c < calls.size(); ++c) {
    const auto& edge = calls[c].output_edge;
    if (!edge.function) continue;
    if (captured[c]) {
      targets.push_back(edge);
      target_call.push_back(c);
    } else if (on_grad[c]) {
      edge.function->add_pre_hook(std::make_unique<OutputGradHook>(
          edge.input_nr, active,
          [&run, c](const torch::Tensor& grad) { run(c, grad); }));
    }
  }
  if (!targets.empty()) {  // none: no call has a grad_fn
    auto returned = torch::autograd::Engine::get_default_engine().execute(
        {torch::autograd::impl::gradient_edge(total)},
        {torch::ones_like(total)}, keep_graph, /*create_graph=*/false,
        /*accumulate_grad=*/false, targets);
    *active = false;
    for (size_t k = 0; k < returned.size(); ++k) {
      const auto grad = std::move(returned[k]);
      run(target_call[k], grad);
    }
  }
  for (auto& call : calls) call.output_edge = torch::autograd::Edge();
  if (failure) std::rethrow_exception(*failure);
}

// Under a bound on the bytes kept for the weighted sums: the call's kept
// tensors that count (per-example gradients and rule state of at least
// `smallest` bytes) are added to `kept` if they still fit under `bound`;
// else all of them are dropped (the rule's weighted_sums then works from A
// and G).
void bound_kept(std::vector<torch::Tensor>& per_example,
                torch::Tensor& rule_state, int64_t bound, int64_t smallest,
                int64_t& kept) {
  auto counted = [smallest](const torch::Tensor& t) {
    const int64_t b =
        t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
    return b > 0 && b >= smallest ? b : 0;
  };
  int64_t bytes = counted(rule_state);
  for (const auto& t : per_example) bytes += counted(t);
  if (bytes == 0 || kept + bytes <= bound) {
    kept += bytes;
    return;
  }
  for (auto& t : per_example) {
    if (counted(t) > 0) t = torch::Tensor();
  }
  if (counted(rule_state) > 0) rule_state = torch::Tensor();
}

// The dtype a call's rule computes in: its first floating parameter's.
std::optional<c10::ScalarType> parameter_dtype(
    const std::vector<torch::Tensor>& params) {
  for (const auto& p : params) {
    if (p.defined() && p.is_floating_point()) return p.scalar_type();
  }
  return std::nullopt;
}

// Under autocast a layer's output, and so G, is bf16 while its parameters
// stay float32 (and its recorded input may be either). The rule then runs on
// copies promoted to the parameters' dtype, so that its norms and weighted
// sums are of the same values and accumulate in float32; only narrower
// floating tensors are promoted (indices stay as they are).
void promote_to_parameter_dtype(LayerCall& call,
                                const std::vector<torch::Tensor>& params) {
  const auto dtype = parameter_dtype(params);
  if (!dtype) return;
  for (auto* t : {&call.input, &call.output, &call.grad_output}) {
    auto promoted = promote_to(*t, *dtype);
    if (!promoted.is_same(*t)) *t = promoted.detach();
  }
}

bool offers(const std::vector<std::string>& routes, const std::string& route) {
  return std::find(routes.begin(), routes.end(), route) != routes.end();
}

// The routes a kMeasure search must time for a call (and the call's table
// key); empty when there is nothing to search.
struct PendingSearch {
  std::vector<std::string> routes;
  std::string key;
};

// Sets call.route (grad_output set): the forced route where offered, else
// the table's (kMeasure, kFixed), else the cost model's (the rule's first).
// A shape kMeasure has not seen keeps the cost model's route and is
// returned for a search.
PendingSearch choose_route(const RoutePolicy& policy, const LayerRule& rule,
                           LayerCall& call, int64_t group_size) {
  auto routes = rule.routes(call, group_size);
  call.route = routes.empty() ? std::string() : routes.front();
  if (routes.size() < 2) return {};
  if (!policy.forced.empty() && offers(routes, policy.forced)) {
    call.route = policy.forced;
    return {};
  }
  if (policy.search == RouteSearch::kCostModel) return {};
  auto key = route_key(call, group_size);
  const auto found = policy.table->find(key);
  if (found && offers(routes, *found)) {
    call.route = *found;
    return {};
  }
  if (policy.search != RouteSearch::kMeasure) return {};
  return {std::move(routes), std::move(key)};
}

// One run of a route as the engine runs it: the norms, then the weighted
// sum (of kept per-example gradients, else the rule's) with unit weights;
// waits for the device (item) so that the time is the route's.
void run_route_once(const LayerRule& rule, const LayerCall& call,
                    int64_t group_size, const std::vector<bool>& needed) {
  const size_t n = needed.size();
  const int64_t rows = call.grad_output.size(0);
  std::vector<torch::Tensor> norms(n), per_example(n), row_weights(n), sums(n);
  rule.squared_norms(call, group_size, needed, norms, per_example);
  double sink = 0.0;
  bool any = false;
  for (size_t s = 0; s < n; ++s) {
    if (!needed[s]) continue;
    sink += norms[s].sum().item<double>();
    if (per_example[s].defined()) {
      auto ones = torch::ones({rows / group_size}, per_example[s].options());
      sink +=
          torch::tensordot(ones, per_example[s], {0}, {0}).sum().item<double>();
    } else {
      row_weights[s] =
          torch::ones({rows}, call.grad_output.options().dtype(torch::kDouble));
      any = true;
    }
  }
  if (any) rule.weighted_sums(call, row_weights, sums);
  for (const auto& t : sums) {
    if (t.defined()) sink += t.sum().item<double>();
  }
  (void)sink;
}

// The fastest of `routes` on this call: a warm-up and `repeats` timed runs
// each, the minimum counted.
std::string fastest_route(const LayerRule& rule, const LayerCall& call,
                          int64_t group_size, const std::vector<bool>& needed,
                          const std::vector<std::string>& routes,
                          int64_t repeats) {
  std::string best = routes.front();
  double best_s = std::numeric_limits<double>::infinity();
  for (const auto& route : routes) {
    LayerCall trial = call;
    trial.route = route;
    double fastest = std::numeric_limits<double>::infinity();
    for (int64_t rep = 0; rep <= repeats; ++rep) {
      trial.rule_state = torch::Tensor();
      const auto start = std::chrono::steady_clock::now();
      run_route_once(rule, trial, group_size, needed);
      const std::chrono::duration<double> took =
          std::chrono::steady_clock::now() - start;
      if (rep > 0) fastest = std::min(fastest, took.count());
    }
    if (fastest < best_s) {
      best_s = fastest;
      best = route;
    }
  }
  return best;
}

// Times `pending`'s routes on the call, sets the fastest as call.route and
// records it in the table.
void search_route(const RoutePolicy& policy, const LayerRule& rule,
                  LayerCall& call, int64_t group_size,
                  const std::vector<bool>& needed,
                  const PendingSearch& pending) {
  call.route = fastest_route(rule, call, group_size, needed, pending.routes,
                             policy.repeats);
  policy.table->insert(pending.key, call.route);
}

}  // namespace

const char* to_string(EnginePhase phase) {
  switch (phase) {
    case EnginePhase::kBackward:
      return "backward to layer outputs";
    case EnginePhase::kNorms:
      return "norms (rules)";
    case EnginePhase::kClipFactors:
      return "clip factors";
    case EnginePhase::kWeightedSums:
      return "weighted sums";
    case EnginePhase::kAccumulate:
      return "accumulate into .grad";
  }
  return "?";
}

RecordingGuard::RecordingGuard(detail::Recorder* recorder)
    : previous_(detail::tls_recorder), active_(true) {
  detail::tls_recorder = recorder;
}

RecordingGuard::~RecordingGuard() {
  if (active_) detail::tls_recorder = previous_;
}

RecordingGuard::RecordingGuard(RecordingGuard&& other) noexcept
    : previous_(other.previous_), active_(other.active_) {
  other.active_ = false;
}

GradientEngine::GradientEngine(std::shared_ptr<torch::nn::Module> model,
                               ClippingOptions options,
                               std::shared_ptr<const RuleRegistry> registry)
    : model_(std::move(model)),
      options_(std::move(options)),
      registry_(registry ? std::move(registry) : builtin_rules()),
      recorder_(std::make_unique<detail::Recorder>()) {
  route_policy_.table = std::make_shared<RouteTable>();
  if (!model_) throw std::invalid_argument("GradientEngine: model is null");
  validate_model(*model_, *registry_);
  for (const auto& item : model_->named_modules("", true)) {
    const LayerRule* rule = registry_->find(*item.value());
    if (rule != nullptr) {
      layers_.push_back({item.value().get(), LayerEntry{item.key(), rule}});
    }
  }
  // Outputs are kept only where a rule may read them: the rest are freed
  // in the forward pass unless autograd itself holds them.
  std::unordered_map<const torch::nn::Module*, const LayerRule*> rule_of;
  for (const auto& [module, entry] : layers_) rule_of[module] = entry.rule;
  recorder_->keep_output = [rule_of](const LayerCall& call) {
    const auto it = rule_of.find(call.layer);
    return it != rule_of.end() && it->second->may_read_output(call);
  };
  num_groups_ =
      detail::parameter_groups(*model_, params_, param_names_, param_group_);
  std::unordered_map<const c10::TensorImpl*, size_t> index;
  for (size_t i = 0; i < params_.size(); ++i) {
    index[params_[i].unsafeGetTensorImpl()] = i;
  }
  param_covered_.assign(params_.size(), false);
  for (const auto& [module, entry] : layers_) {
    for (const auto& p : entry.rule->parameters(*module)) {
      if (!p.defined()) continue;
      auto it = index.find(p.unsafeGetTensorImpl());
      if (it != index.end()) param_covered_[it->second] = true;
    }
  }
}

void GradientEngine::set_route_policy(RoutePolicy policy) {
  if (policy.repeats < 1) {
    throw std::invalid_argument("route search repeats must be >= 1, got " +
                                std::to_string(policy.repeats));
  }
  if (!policy.table) policy.table = std::make_shared<RouteTable>();
  route_policy_ = std::move(policy);
}

RecordingGuard GradientEngine::record() {
  recorder_->calls.clear();
  return RecordingGuard(recorder_.get());
}

std::vector<torch::Tensor> GradientEngine::parameters() const {
  std::vector<torch::Tensor> out;
  for (const auto& p : params_) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

ClipResult GradientEngine::clip_and_accumulate(
    const torch::Tensor& per_example_loss, int64_t group_size) {
  std::vector<LayerCall> calls = std::move(recorder_->calls);
  recorder_->calls.clear();
  if (!per_example_loss.defined() || per_example_loss.dim() != 1) {
    throw std::invalid_argument(
        "per_example_loss must be a 1-d tensor [B*K], got " +
        (per_example_loss.defined() ? c10::str(per_example_loss.sizes())
                                    : std::string("an undefined tensor")));
  }
  const int64_t rows = per_example_loss.size(0);
  if (group_size < 1 || rows % group_size != 0) {
    throw std::invalid_argument(
        "group_size must be >= 1 and divide the number of loss rows (" +
        std::to_string(rows) + "), got " + std::to_string(group_size));
  }
  const int64_t batch = rows / group_size;
  // Trainable parameters: all must be covered and grouped.
  std::vector<bool> trainable(params_.size(), false);
  bool any_trainable = false;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].requires_grad()) continue;
    if (param_group_[i] < 0 || !param_covered_[i]) {
      throw std::invalid_argument(
          "parameter '" + param_names_[i] +
          "' became trainable after the GradientEngine was built (or no rule "
          "covers it); build a new engine");
    }
    trainable[i] = true;
    any_trainable = true;
  }
  std::unordered_map<const c10::TensorImpl*, size_t> index;
  for (size_t i = 0; i < params_.size(); ++i) {
    index[params_[i].unsafeGetTensorImpl()] = i;
  }
  std::unordered_map<const torch::nn::Module*, const LayerEntry*> layer_of;
  for (const auto& [module, entry] : layers_) layer_of[module] = &entry;

  // Keep only this engine's calls.
  std::vector<LayerCall> mine;
  std::vector<const LayerEntry*> entries;
  for (auto& call : calls) {
    auto it = layer_of.find(call.layer);
    if (it == layer_of.end()) continue;
    if (call.output_version_counter.current_version() !=
        static_cast<uint32_t>(call.output_version)) {
      throw std::invalid_argument(
          "the output of layer '" + it->second->path +
          "' was modified in place after the layer ran (e.g. an in-place "
          "activation); use out-of-place operations after DP layers");
    }
    entries.push_back(it->second);
    mine.push_back(std::move(call));
  }
  calls.clear();

  const bool has_graph = per_example_loss.requires_grad();
  if (rows > 0 && any_trainable && has_graph && mine.empty()) {
    throw std::invalid_argument(
        "no DP-layer calls were recorded for this loss: run the forward pass "
        "inside `auto recording = engine.record();`");
  }

  std::vector<torch::Tensor> sums(params_.size());
  torch::Tensor norms, factors;
  const bool flat = options_.mode() == ClipMode::kFlat;
  const auto norm_options =
      per_example_loss.options().dtype(torch::kDouble).requires_grad(false);
  if (backward_passes_ == 2 && rows > 0 && has_graph && !mine.empty()) {
    two_pass(per_example_loss, group_size, mine, entries, index, norms, factors,
             sums);
  } else if (rows > 0 && has_graph && !mine.empty()) {
    one_pass(per_example_loss, group_size, mine, entries, index, norms, factors,
             sums);
  } else {
    norms = flat ? torch::zeros({batch}, norm_options)
                 : torch::zeros({batch, num_groups_}, norm_options);
    factors = detail::clip_factors(norms, options_, num_groups_);
  }
  mine.clear();
  {
    PhaseScope accumulate(observer_, EnginePhase::kAccumulate);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_.size(); ++i) {
      if (!trainable[i]) continue;
      auto& grad = params_[i].mutable_grad();
      if (sums[i].defined()) {
        if (grad.defined()) {
          grad.add_(sums[i]);
        } else {
          grad = sums[i].contiguous();
        }
      } else if (!grad.defined()) {
        grad = torch::zeros_like(params_[i]);
      }
    }
  }
  return detail::make_clip_result(batch, group_size, norms, factors, options_);
}

void GradientEngine::one_pass(
    const torch::Tensor& per_example_loss, int64_t group_size,
    std::vector<LayerCall>& calls,
    const std::vector<const LayerEntry*>& entries,
    const std::unordered_map<const c10::TensorImpl*, size_t>& index,
    torch::Tensor& norms, torch::Tensor& factors,
    std::vector<torch::Tensor>& sums) {
  const int64_t rows = per_example_loss.size(0);
  const int64_t batch = rows / group_size;
  const bool flat = options_.mode() == ClipMode::kFlat;
  const auto norm_options =
      per_example_loss.options().dtype(torch::kDouble).requires_grad(false);
  // Which calls use each trainable parameter: one call's norms come from its
  // rule; a parameter several calls use (tied weights) needs the norm of
  // the sum of its per-example gradients, after the backward.
  struct Use {
    size_t call;
    size_t slot;
  };
  std::vector<std::vector<Use>> uses(params_.size());
  std::vector<std::vector<torch::Tensor>> call_params(calls.size());
  for (size_t c = 0; c < calls.size(); ++c) {
    call_params[c] = entries[c]->rule->parameters(*calls[c].layer);
    for (size_t s = 0; s < call_params[c].size(); ++s) {
      const auto& p = call_params[c][s];
      if (!p.defined() || !p.requires_grad()) continue;
      uses[index.at(p.unsafeGetTensorImpl())].push_back({c, s});
    }
  }
  // The one backward pass: gradients w.r.t. the layers' outputs only, so no
  // weight-gradient kernel runs. Each call's norms are taken as its output
  // gradient G arrives; where the weighted sum will not need A and G (kept
  // per-example gradients, or rule state) both are released at once, so
  // that what the step holds at the end of the backward is the kept
  // tensors and the A and G of the calls still to be summed.
  std::vector<torch::Tensor> sq(params_.size());
  std::vector<torch::Tensor> per_example(params_.size());
  bool searched = false;
  int64_t kept_bytes = 0;  // counted against max_kept_bytes_
  const RoutePolicy& policy = route_policy_;
  std::vector<std::function<void(const torch::Tensor&)>> on_grad(calls.size());
  for (size_t c = 0; c < calls.size(); ++c) {
    on_grad[c] = [&, c](const torch::Tensor& grad) {
      auto& call = calls[c];
      const auto& rule = *entries[c]->rule;
      call.grad_output = grad;
      promote_to_parameter_dtype(call, call_params[c]);
      // The call's route (routes.h); a shape kMeasure has not seen is
      // searched here, its output kept until then.
      const auto pending = choose_route(policy, rule, call, group_size);
      if (pending.routes.empty() && !rule.uses_output(call, group_size)) {
        call.output = torch::Tensor();
      }
      const size_t n = call_params[c].size();
      std::vector<bool> needed(n, false);
      std::vector<bool> trainable(n, false);
      bool any = false;
      for (size_t s = 0; s < n; ++s) {
        const auto& p = call_params[c][s];
        if (!p.defined() || !p.requires_grad()) continue;
        trainable[s] = true;
        needed[s] = uses[index.at(p.unsafeGetTensorImpl())].size() == 1;
        any = any || needed[s];
      }
      if (!any) return;  // only shared parameters: A and G kept for them
      if (!pending.routes.empty()) {
        search_route(policy, rule, call, group_size, needed, pending);
        searched = true;
      }
      std::vector<torch::Tensor> call_norms(n), call_pe(n);
      if (observer_ != nullptr)
        observer_->layer_begin(EnginePhase::kNorms, call);
      rule.squared_norms(call, group_size, needed, call_norms, call_pe);
      if (max_kept_bytes_ >= 0) {
        bound_kept(call_pe, call.rule_state, max_kept_bytes_,
                   min_counted_kept_bytes_, kept_bytes);
      }
      std::vector<bool> summed(n, false);  // slots weighted_sums will do
      bool any_summed = false;
      for (size_t s = 0; s < n; ++s) {
        summed[s] = trainable[s] && (!needed[s] || !call_pe[s].defined());
        any_summed = any_summed || summed[s];
      }
      if (observer_ != nullptr) {
        const bool kept =
            std::any_of(call_pe.begin(), call_pe.end(),
                        [](const torch::Tensor& t) { return t.defined(); });
        observer_->layer_end(EnginePhase::kNorms, call, kept);
      }
      for (size_t s = 0; s < n; ++s) {
        if (!needed[s]) continue;
        const size_t i = index.at(call_params[c][s].unsafeGetTensorImpl());
        sq[i] = call_norms[s].to(torch::kDouble);
        per_example[i] = call_pe[s];
      }
      if (!any_summed || !rule.weighted_sums_read_activations(call, summed)) {
        call.input = torch::Tensor();
        call.output = torch::Tensor();
        call.grad_output = torch::Tensor();
      }
    };
  }
  {
    PhaseScope phase(observer_, EnginePhase::kBackward);
    backward_to_calls(per_example_loss.sum(), calls, on_grad,
                      /*keep_graph=*/false);
  }
  on_grad.clear();
  if (searched && !policy.cache_file.empty()) {
    policy.table->save(policy.cache_file, route_context());
  }
  torch::NoGradGuard no_grad;
  std::optional<PhaseScope> phase;
  phase.emplace(observer_, EnginePhase::kNorms);
  // Shared parameters: the norm of the TOTAL per-example gradient, over the
  // calls that got a gradient.
  for (size_t i = 0; i < params_.size(); ++i) {
    if (uses[i].size() < 2) continue;
    torch::Tensor total;
    for (const auto& u : uses[i]) {
      if (!calls[u.call].grad_output.defined()) continue;
      auto pe = entries[u.call]->rule->per_example_grads(calls[u.call], u.slot,
                                                         group_size);
      total = total.defined() ? total.add_(pe) : pe;
    }
    if (!total.defined()) continue;
    per_example[i] = total;
    sq[i] = detail::squared_norm_per_example(total).to(torch::kDouble);
  }
  phase.emplace(observer_, EnginePhase::kClipFactors);
  // Norms and clip factors. The example's gradient is the mean of its K
  // rows' gradients: norm = ‖Σ rows‖ / K.
  auto layer_sq = torch::zeros({batch, num_groups_}, norm_options);
  for (size_t i = 0; i < params_.size(); ++i) {
    if (sq[i].defined()) layer_sq.select(1, param_group_[i]).add_(sq[i]);
  }
  const double inv_k = 1.0 / static_cast<double>(group_size);
  norms = flat ? layer_sq.sum(1).sqrt() * inv_k : layer_sq.sqrt() * inv_k;
  factors = detail::clip_factors(norms, options_, num_groups_);
  auto example_weight = [&](size_t i) {
    auto f = flat ? factors : factors.select(1, param_group_[i]);
    return f * inv_k;
  };
  phase.emplace(observer_, EnginePhase::kWeightedSums);
  // Weighted sums Σᵢ cᵢ·gᵢ.
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!per_example[i].defined()) continue;
    sums[i] = torch::tensordot(example_weight(i).to(per_example[i].dtype()),
                               per_example[i], {0}, {0});
    per_example[i] = torch::Tensor();
  }
  for (size_t c = 0; c < calls.size(); ++c) {
    const size_t n = call_params[c].size();
    std::vector<torch::Tensor> row_weights(n), call_sums(n);
    bool any = false;
    for (size_t s = 0; s < n; ++s) {
      const auto& p = call_params[c][s];
      if (!p.defined() || !p.requires_grad()) continue;
      const size_t i = index.at(p.unsafeGetTensorImpl());
      if (uses[i].size() != 1 || sums[i].defined() || !sq[i].defined()) {
        continue;
      }
      row_weights[s] = example_weight(i).repeat_interleave(group_size);
      any = true;
    }
    if (!any) continue;
    if (observer_ != nullptr) {
      observer_->layer_begin(EnginePhase::kWeightedSums, calls[c]);
    }
    entries[c]->rule->weighted_sums(calls[c], row_weights, call_sums);
    if (observer_ != nullptr) {
      observer_->layer_end(EnginePhase::kWeightedSums, calls[c], false);
    }
    for (size_t s = 0; s < n; ++s) {
      if (!row_weights[s].defined()) continue;
      sums[index.at(call_params[c][s].unsafeGetTensorImpl())] = call_sums[s];
    }
  }
}

void GradientEngine::set_backward_passes(int passes) {
  if (passes != 1 && passes != 2) {
    throw std::invalid_argument("backward_passes must be 1 or 2, got " +
                                std::to_string(passes));
  }
  backward_passes_ = passes;
}

void GradientEngine::two_pass(
    const torch::Tensor& per_example_loss, int64_t group_size,
    std::vector<LayerCall>& calls,
    const std::vector<const LayerEntry*>& entries,
    const std::unordered_map<const c10::TensorImpl*, size_t>& index,
    torch::Tensor& norms, torch::Tensor& factors,
    std::vector<torch::Tensor>& sums) {
  if (options_.mode() != ClipMode::kFlat) {
    throw std::invalid_argument(
        "two backward passes clip the flat norm only (the second pass "
        "reweights whole examples); use one pass for per-layer clipping");
  }
  const int64_t rows = per_example_loss.size(0);
  const int64_t batch = rows / group_size;
  const auto norm_options =
      per_example_loss.options().dtype(torch::kDouble).requires_grad(false);
  // Which slots of each call to take norms of; a parameter used by two
  // calls (tied weights) needs both calls' A and G at once: refused.
  std::vector<size_t> uses(params_.size(), 0);
  std::vector<std::vector<torch::Tensor>> call_params(calls.size());
  for (size_t c = 0; c < calls.size(); ++c) {
    call_params[c] = entries[c]->rule->parameters(*calls[c].layer);
    for (const auto& p : call_params[c]) {
      if (p.defined() && p.requires_grad()) {
        ++uses[index.at(p.unsafeGetTensorImpl())];
      }
    }
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (uses[i] > 1) {
      throw std::invalid_argument(
          "two backward passes: parameter '" + param_names_[i] +
          "' is used by several layer calls (tied or repeated weights); use "
          "one pass");
    }
  }
  // Pass 2 sums the clipped gradients as autograd computes weight gradients,
  // in the forward's dtype: in bf16 under autocast, not the float32 of the
  // norms. Refused, so that the clipped sum is always the sum of the
  // gradients whose norms were taken.
  for (size_t c = 0; c < calls.size(); ++c) {
    const auto dtype = parameter_dtype(call_params[c]);
    if (dtype && calls[c].output_dtype != *dtype) {
      throw std::invalid_argument(
          "two backward passes: layer '" + entries[c]->path + "' ran in " +
          std::string(c10::toString(calls[c].output_dtype)) +
          " (autocast) with " + c10::toString(*dtype) +
          " parameters, and the second pass would sum the clipped gradients "
          "in " +
          c10::toString(calls[c].output_dtype) +
          "; use one pass with mixed precision");
    }
  }
  // Pass 1: each call's norms taken as its output gradient arrives, then
  // its A and G released; autograd keeps its own saved tensors (keep_graph)
  // for pass 2. The targets are the outputs' edges, as in one pass (so no
  // weight gradient is computed).
  auto sq = torch::zeros({batch}, norm_options);
  bool searched = false;
  const auto total = per_example_loss.sum();  // with grad mode as called
  std::vector<std::function<void(const torch::Tensor&)>> norm_of(calls.size());
  for (size_t c = 0; c < calls.size(); ++c) {
    auto& call = calls[c];
    const auto* rule = entries[c]->rule;
    std::vector<bool> needed(call_params[c].size(), false);
    bool any = false;
    for (size_t s = 0; s < needed.size(); ++s) {
      const auto& p = call_params[c][s];
      needed[s] = p.defined() && p.requires_grad();
      any = any || needed[s];
    }
    if (!any) continue;
    norm_of[c] = [this, &call, &params = call_params[c], rule, needed,
                  group_size, &sq, &searched](const torch::Tensor& grad) {
      call.grad_output = grad;
      promote_to_parameter_dtype(call, params);
      const auto pending = choose_route(route_policy_, *rule, call, group_size);
      if (!pending.routes.empty()) {
        search_route(route_policy_, *rule, call, group_size, needed, pending);
        searched = true;
      }
      std::vector<torch::Tensor> call_norms(needed.size()),
          call_pe(needed.size());
      if (observer_ != nullptr) {
        observer_->layer_begin(EnginePhase::kNorms, call);
      }
      rule->squared_norms(call, group_size, needed, call_norms, call_pe);
      if (observer_ != nullptr) {
        observer_->layer_end(EnginePhase::kNorms, call, false);
      }
      for (size_t s = 0; s < needed.size(); ++s) {
        if (needed[s]) sq.add_(call_norms[s].to(torch::kDouble));
      }
      call.grad_output = torch::Tensor();
      call.input = torch::Tensor();
      call.output = torch::Tensor();
      call.rule_state = torch::Tensor();
    };
  }
  std::optional<PhaseScope> phase;
  phase.emplace(observer_, EnginePhase::kBackward);
  backward_to_calls(total, calls, norm_of, /*keep_graph=*/true);
  norm_of.clear();
  torch::NoGradGuard no_grad;
  if (searched && !route_policy_.cache_file.empty()) {
    route_policy_.table->save(route_policy_.cache_file, route_context());
  }
  phase.emplace(observer_, EnginePhase::kClipFactors);
  const double inv_k = 1.0 / static_cast<double>(group_size);
  norms = sq.sqrt() * inv_k;
  factors = detail::clip_factors(norms, options_, num_groups_);
  // Pass 2: the backward of Σ_r w_r·loss_r, w_r = c_i/K for the rows of
  // example i, over the kept graph: Σ_i c_i·g_i as an ordinary weight
  // gradient, into `sums` (the accumulate phase adds it into .grad).
  phase.emplace(observer_, EnginePhase::kWeightedSums);
  const auto row_weight = (factors * inv_k)
                              .repeat_interleave(group_size)
                              .to(per_example_loss.dtype());
  torch::AutoGradMode grad_mode(true);
  const auto weighted = (per_example_loss * row_weight).sum();
  torch::autograd::edge_list leaves;
  std::vector<size_t> leaf_of;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].requires_grad()) {
      leaves.push_back(torch::autograd::impl::gradient_edge(params_[i]));
      leaf_of.push_back(i);
    }
  }
  const auto grads = torch::autograd::Engine::get_default_engine().execute(
      {torch::autograd::impl::gradient_edge(weighted)},
      {torch::ones_like(weighted)}, /*keep_graph=*/false,
      /*create_graph=*/false, /*accumulate_grad=*/false, leaves);
  for (size_t k = 0; k < grads.size(); ++k) sums[leaf_of[k]] = grads[k];
}

}  // namespace dptrain::dp
