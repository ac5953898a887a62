// PRV accountant. Notation: a step's privacy random variable (PRV) is the
// privacy loss Y = log(P(x)/Q(x)) with x ~ P, where for the Poisson-sampled
// Gaussian P = (1−q)·N(0,σ²) + q·N(1,σ²) and Q = N(0,σ²). "Remove" is the
// pair (P, Q), "add" the pair (Q, P); both are composed and the worse is
// reported. With s = (2x−1)/(2σ²), Y = log(1 − q + q·e^s) is increasing in x,
// so its CDF is a Gaussian CDF at the x where the loss equals t.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <complex>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <unsupported/Eigen/FFT>

#include "dptrain/accountant/detail/numeric.h"
#include "dptrain/accountant/prv_accountant.h"
#include "dptrain/accountant/rdp_accountant.h"

namespace dptrain::accountant {

using detail::fail;
using detail::fmt;
using detail::kInf;

namespace {

enum class Direction { kRemove, kAdd };

// Φ(y) and 1 − Φ(y), each accurate where it is small.
struct Tail {
  double cdf;
  double sf;
};
Tail normal(double y) {
  const double small = 0.5 * std::erfc(std::fabs(y) / std::sqrt(2.0));
  return y < 0 ? Tail{small, 1.0 - small} : Tail{1.0 - small, small};
}

// One step's PRV: its CDF (and survival function) at a loss value t.
class StepPrv {
 public:
  StepPrv(double q, double sigma, Direction dir)
      : q_(q), sigma_(sigma), dir_(dir), log_1mq_(std::log1p(-q)) {}

  // F(t) and 1 − F(t).
  Tail at(double t) const {
    if (dir_ == Direction::kRemove) {
      if (!(t > log_1mq_)) return {0.0, 1.0};
      const double x = x_of_loss(t);
      const Tail a = normal(x / sigma_);
      const Tail b = normal((x - 1.0) / sigma_);
      return {(1.0 - q_) * a.cdf + q_ * b.cdf, (1.0 - q_) * a.sf + q_ * b.sf};
    }
    // Add: Y' = −log(1 − q + q e^s) with x ~ N(0, σ²); Y' <= t ⟺ x >= x(−t).
    const double u = -t;
    if (!(u > log_1mq_)) return {1.0, 0.0};
    const Tail a = normal(x_of_loss(u) / sigma_);
    return {a.sf, a.cdf};
  }

  // E[Y], by the trapezoid rule in x (spectrally accurate: the integrand is
  // analytic in a strip of half-width πσ² and has Gaussian tails).
  double mean() const {
    const double s2 = sigma_ * sigma_;
    const double lo = -40.0 * sigma_;
    const double hi = 1.0 + 40.0 * sigma_;
    const double h = std::min(sigma_, s2) / 8.0;
    const auto n = static_cast<long>(std::ceil((hi - lo) / h));
    const double log_q = std::log(q_);
    const double norm = 1.0 / (sigma_ * std::sqrt(2.0 * M_PI));
    double sum = 0.0;
    for (long k = 0; k <= n; ++k) {
      const double x = lo + k * h;
      const double s = (2.0 * x - 1.0) / (2.0 * s2);
      const double loss = detail::log_add(log_1mq_, log_q + s);
      const double p0 = norm * std::exp(-x * x / (2.0 * s2));
      if (dir_ == Direction::kRemove) {
        const double p1 = norm * std::exp(-(x - 1.0) * (x - 1.0) / (2.0 * s2));
        sum += ((1.0 - q_) * p0 + q_ * p1) * loss;
      } else {
        sum -= p0 * loss;
      }
    }
    return sum * h;
  }

 private:
  // The x at which the remove-direction loss log(1 − q + q e^s) equals t
  // (t > log(1 − q)): s = log((e^t − 1 + q)/q), x = σ² s + 1/2.
  double x_of_loss(double t) const {
    const double log_num = t > 1.0 ? t + std::log1p(-(1.0 - q_) * std::exp(-t))
                                   : std::log(std::expm1(t) + q_);
    return sigma_ * sigma_ * (log_num - std::log(q_)) + 0.5;
  }

  double q_;
  double sigma_;
  Direction dir_;
  double log_1mq_;
};

// Smallest m >= n with m % 4 == 0 and no prime factor above 5 (fast FFT).
std::int64_t fast_fft_size(std::int64_t n) {
  for (std::int64_t m = (n + 3) / 4 * 4;; m += 4) {
    std::int64_t r = m;
    for (int p : {2, 3, 5}) {
      while (r % p == 0) r /= p;
    }
    if (r == 1) return m;
  }
}

struct Grid {
  double h = 0.0;      // mesh
  std::int64_t n = 0;  // points t_k = (k − n/2)·h, k = 0 … n−1
  double t(std::int64_t k) const { return static_cast<double>(k - n / 2) * h; }
};

// Distinct (q, σ) with their total steps; composition is commutative.
std::vector<PoissonSampledGaussian> merge(const EventHistory& events) {
  std::map<std::pair<double, double>, std::int64_t> steps;
  for (const auto& e : events) {
    if (e.steps > 0) steps[{e.sample_rate, e.noise_multiplier}] += e.steps;
  }
  std::vector<PoissonSampledGaussian> out;
  for (const auto& [key, t] : steps) out.push_back({key.first, key.second, t});
  return out;
}

// Gopi et al. (Remark 5.6): the domain [−L, L] from RDP tail bounds and the
// mesh from eps_error.
Grid choose_grid(const std::vector<PoissonSampledGaussian>& events,
                 double eps_error, double delta_error) {
  const auto total = static_cast<double>(total_steps(events));
  RdpAccountant all;
  all.set_history(events);
  double l = all.get_epsilon(delta_error / 4.0).epsilon;
  for (const auto& e : events) {
    RdpAccountant one;
    one.compose({e.sample_rate, e.noise_multiplier, 1});
    l = std::max(l, one.get_epsilon(delta_error / (8.0 * total)).epsilon);
  }
  l = std::max(l, eps_error) + 3.0;
  Grid g;
  g.h = eps_error / std::sqrt(total * std::log(12.0 / delta_error) / 2.0);
  const double half_points = std::ceil(l / g.h);
  const double wanted = 2.0 * half_points + 2.0;
  if (!(wanted <= static_cast<double>(PrvAccountant::kMaxGridSize))) {
    fail("the PRV grid would need " + fmt(wanted) + " points (limit " +
         std::to_string(PrvAccountant::kMaxGridSize) +
         ") for eps_error=" + fmt(eps_error) + " and " + fmt(total) +
         " steps; raise eps_error or use the RDP accountant");
  }
  g.n = fast_fft_size(static_cast<std::int64_t>(wanted));
  // Rounding in the FFT: ‖error‖₂ ≈ ε_mach·log2(n)·‖pmf‖₂ <= ε_mach·log2(n),
  // so a tail sum of up to n entries is off by at most √n times that; keep a
  // factor 10 below delta_error.
  const double n = static_cast<double>(g.n);
  if (10.0 * std::sqrt(n) * std::log2(n) * DBL_EPSILON > delta_error) {
    fail("delta_error=" + fmt(delta_error) +
         " is below the rounding error of a " + std::to_string(g.n) +
         "-point FFT; raise delta (or delta_error) or "
         "eps_error");
  }
  return g;
}

// The single-step PRV discretised on the grid: mass of each cell
// [t_k − h/2, t_k + h/2), truncated to the grid and renormalised, and the
// shift that makes the discrete mean equal the continuous one.
struct Discrete {
  std::vector<double> pmf;
  double shift = 0.0;
};

// Tails lighter than `cut` on either side are left out (see compose).
Discrete discretise(const StepPrv& prv, const Grid& g, double cut) {
  const std::int64_t n = g.n;
  auto edge = [&](std::int64_t k) { return g.t(k) - 0.5 * g.h; };  // k = 0…n
  const double kTiny = cut;
  // Edges below lo have F < cut, edges above hi have 1 − F < cut: skip
  // them (bisection on the monotone CDF).
  std::int64_t lo = 0;
  std::int64_t hi = n;
  {
    std::int64_t a = 0;
    std::int64_t b = n;
    if (prv.at(edge(n)).cdf < kTiny) {
      lo = n;
    } else {
      while (b - a > 1) {
        const std::int64_t m = (a + b) / 2;
        (prv.at(edge(m)).cdf < kTiny ? a : b) = m;
      }
      lo = a;
    }
    a = 0;
    b = n;
    if (prv.at(edge(0)).sf < kTiny) {
      hi = 0;
    } else {
      while (b - a > 1) {
        const std::int64_t m = (a + b) / 2;
        (prv.at(edge(m)).sf < kTiny ? b : a) = m;
      }
      hi = b;
    }
  }
  Discrete d;
  d.pmf.assign(static_cast<std::size_t>(n), 0.0);
  Tail left = prv.at(edge(lo));
  const double below = left.cdf;
  double above = 0.0;
  double mass = 0.0;
  double first_moment = 0.0;
  for (std::int64_t k = lo; k < std::min(hi, n); ++k) {
    const Tail right = prv.at(edge(k + 1));
    const double p =
        right.cdf <= 0.5 ? right.cdf - left.cdf : left.sf - right.sf;
    d.pmf[static_cast<std::size_t>(k)] = p;
    mass += p;
    first_moment += p * g.t(k);
    left = right;
  }
  above = left.sf;
  if (!(mass > 0.0)) {
    fail("the PRV grid misses the privacy loss distribution (mass " +
         fmt(mass) + ", below " + fmt(below) + ", above " + fmt(above) + ")");
  }
  for (auto& p : d.pmf) p /= mass;
  d.shift = prv.mean() - first_moment / mass;
  return d;
}

using Spectrum = std::vector<std::complex<double>>;

// base^exponent, elementwise, into `out` (multiplied into it when
// `accumulate`). Bins whose power underflows are set to zero without being
// computed: after T steps only the low frequencies survive.
void power_into(const Spectrum& base, std::int64_t exponent, Spectrum& out,
                bool accumulate) {
  const double t = static_cast<double>(exponent);
  for (std::size_t i = 0; i < base.size(); ++i) {
    const std::complex<double> z = base[i];
    const double m2 = z.real() * z.real() + z.imag() * z.imag();
    std::complex<double> r(0.0, 0.0);
    if (0.5 * t * std::log(m2) > -740.0) {
      std::complex<double> b = z;
      std::complex<double> acc(1.0, 0.0);
      for (std::int64_t e = exponent;;) {
        if (e & 1) acc *= b;
        e >>= 1;
        if (e == 0) break;
        b *= b;
      }
      r = acc;
    }
    out[i] = accumulate ? out[i] * r : r;
  }
}

// One FFT object for the process: it keeps its plans (FFTW twiddles cost as
// much as a transform to recompute). Guarded by a mutex: FFTW's planner is
// not thread-safe, and Eigen plans inside fwd/inv.
std::mutex& fft_mutex() {
  static std::mutex m;
  return m;
}
Eigen::FFT<double>& shared_fft() {
  static Eigen::FFT<double> fft = [] {
    Eigen::FFT<double> f;
    f.SetFlag(Eigen::FFT<double>::HalfSpectrum);
    return f;
  }();
  return fft;
}

// The composed distribution: pmf over values t_k + shift.
struct Composed {
  std::vector<double> pmf;
  double shift = 0.0;
};

// Each step's law loses at most 2·cut of mass to the cut tails (then
// renormalised), so after T steps δ moves by at most 2·T·cut; compose_all
// takes cut = 1e-6·delta_error/T, a millionth of the δ error budget.
Composed compose_direction(const std::vector<PoissonSampledGaussian>& events,
                           const Grid& g, Direction dir, double cut) {
  std::vector<Discrete> steps_pmf;
  for (const auto& e : events) {
    steps_pmf.push_back(
        discretise(StepPrv(e.sample_rate, e.noise_multiplier, dir), g, cut));
  }
  Composed out;
  std::int64_t steps = 0;
  std::vector<double> circular;
  {
    std::lock_guard<std::mutex> lock(fft_mutex());
    Eigen::FFT<double>& fft = shared_fft();
    Spectrum total;
    Spectrum spec;
    for (std::size_t k = 0; k < events.size(); ++k) {
      fft.fwd(spec, steps_pmf[k].pmf);
      if (total.empty()) total.resize(spec.size());
      power_into(spec, events[k].steps, total, k > 0);
      out.shift += static_cast<double>(events[k].steps) * steps_pmf[k].shift;
      steps += events[k].steps;
    }
    fft.inv(circular, total);
  }
  // A sum of T grid values (j_m − n/2)·h sits at index Σj_m; the output grid
  // index k holds Σj_m = k + (T−1)·n/2 (mod n), a rotation by 0 or n/2.
  const auto n = static_cast<std::size_t>(g.n);
  const std::size_t offset = ((steps - 1) % 2 == 0) ? 0 : n / 2;
  if (offset != 0) {
    std::rotate(circular.begin(), circular.begin() + static_cast<long>(offset),
                circular.end());
  }
  out.pmf = std::move(circular);
  return out;
}

// ε(δ) of a discrete distribution for several δ at once: the ε with
// Σ_{v_k > ε} p_k (1 − e^{ε − v_k}) = δ, exactly for the discrete law.
std::vector<double> epsilons(const Composed& c, const Grid& g,
                             const std::vector<double>& deltas) {
  std::vector<double> eps(deltas.size(), 0.0);
  std::vector<bool> found(deltas.size(), false);
  const std::int64_t n = g.n;
  const double decay = std::exp(-g.h);
  double d1 = 0.0;   // Σ_{k > i} p_k
  double d2s = 0.0;  // Σ_{k > i} p_k e^{v_{i+1} − v_k}
  std::size_t remaining = deltas.size();
  for (std::int64_t i = n - 2; i >= 0 && remaining > 0; --i) {
    const double p = c.pmf[static_cast<std::size_t>(i + 1)];
    d1 += p;
    d2s = p + decay * d2s;
    const double d_at_vi = d1 - decay * d2s;  // δ(v_i)
    for (std::size_t j = 0; j < deltas.size(); ++j) {
      if (found[j] || d_at_vi < deltas[j]) continue;
      // ε in [v_i, v_{i+1}]: δ(ε) = d1 − e^{ε − v_{i+1}} d2s.
      const double v_next = g.t(i + 1) + c.shift;
      eps[j] = v_next + std::log((d1 - deltas[j]) / d2s);
      found[j] = true;
      --remaining;
    }
  }
  // δ(v_0) < δ: ε is below the grid, so below 0.
  return eps;
}

double delta_at(const Composed& c, const Grid& g, double epsilon) {
  double sum = 0.0;
  for (std::int64_t k = g.n - 1; k >= 0; --k) {
    const double v = g.t(k) + c.shift;
    if (v <= epsilon) break;
    sum += c.pmf[static_cast<std::size_t>(k)] * -std::expm1(epsilon - v);
  }
  return sum;
}

void check_options(const PrvOptions& o) {
  if (!(o.eps_error > 0.0 && o.eps_error <= 1.0)) {
    fail("eps_error must be in (0, 1], got " + fmt(o.eps_error));
  }
  if (!(o.delta_error >= 0.0 && o.delta_error < 1.0)) {
    fail("delta_error must be in [0, 1) (0 = default), got " +
         fmt(o.delta_error));
  }
}

double tail_cut(const std::vector<PoissonSampledGaussian>& events,
                double delta_error) {
  return std::max(
      1e-300, 1e-6 * delta_error / static_cast<double>(total_steps(events)));
}

double clamp01(double x) { return std::min(1.0, std::max(0.0, x)); }

std::vector<Direction> directions(
    const std::vector<PoissonSampledGaussian>& events) {
  // With q = 1 everywhere the two directions are the same distribution.
  for (const auto& e : events) {
    if (e.sample_rate < 1.0) return {Direction::kRemove, Direction::kAdd};
  }
  return {Direction::kRemove};
}

}  // namespace

PrvAccountant::PrvAccountant(PrvOptions options) : options_(options) {
  check_options(options_);
}

void PrvAccountant::compose(const PoissonSampledGaussian& event) {
  append_event(history_, event);
}

void PrvAccountant::set_history(EventHistory events) {
  for (const auto& e : events) validate(e);
  total_steps(events);
  history_ = std::move(events);
}

namespace {
double epsilon_delta_error(const PrvOptions& o, double delta) {
  const double de = o.delta_error > 0.0 ? o.delta_error : delta / 1000.0;
  if (!(de < delta)) {
    fail("delta_error must be < delta=" + fmt(delta) + ", got " + fmt(de));
  }
  return de;
}
}  // namespace

std::int64_t PrvAccountant::grid_size(double delta) const {
  detail::check_delta(delta);
  const auto events = merge(history_);
  if (events.empty()) return 0;
  return choose_grid(events, options_.eps_error,
                     epsilon_delta_error(options_, delta))
      .n;
}

namespace {

// Runs fn(direction) for each direction, the second on its own thread (the
// discretisation dominates and runs in parallel; the FFTs take turns).
template <typename Result, typename Fn>
std::vector<Result> per_direction(const std::vector<Direction>& dirs, Fn fn) {
  std::vector<Result> out(dirs.size());
  std::future<Result> other;
  if (dirs.size() > 1) other = std::async(std::launch::async, fn, dirs[1]);
  out[0] = fn(dirs[0]);
  if (dirs.size() > 1) out[1] = other.get();
  return out;
}

}  // namespace

PrvEpsilon PrvAccountant::get_epsilon(double delta) const {
  detail::check_delta(delta);
  const double de = epsilon_delta_error(options_, delta);
  const auto events = merge(history_);
  if (events.empty()) return {0.0, 0.0, 0.0};
  const Grid g = choose_grid(events, options_.eps_error, de);
  const double cut = tail_cut(events, de);
  const auto results = per_direction<std::vector<double>>(
      directions(events), [&](Direction dir) {
        const Composed c = compose_direction(events, g, dir, cut);
        return epsilons(c, g, {delta + de, delta, delta - de});
      });
  PrvEpsilon out{0.0, 0.0, 0.0};
  for (const auto& e : results) {
    out.lower = std::max(out.lower, e[0] - options_.eps_error);
    out.estimate = std::max(out.estimate, e[1]);
    out.upper = std::max(out.upper, e[2] + options_.eps_error);
  }
  return out;
}

PrvDelta PrvAccountant::get_delta(double epsilon) const {
  if (!(epsilon >= 0.0) || !std::isfinite(epsilon)) {
    fail("epsilon must be finite and >= 0, got " + fmt(epsilon));
  }
  const double de = options_.delta_error > 0.0 ? options_.delta_error : 1e-10;
  const auto events = merge(history_);
  if (events.empty()) return {0.0, 0.0, 0.0};
  const Grid g = choose_grid(events, options_.eps_error, de);
  const double cut = tail_cut(events, de);
  const double eps_error = options_.eps_error;
  const auto results =
      per_direction<PrvDelta>(directions(events), [&](Direction dir) {
        const Composed c = compose_direction(events, g, dir, cut);
        return PrvDelta{clamp01(delta_at(c, g, epsilon + eps_error) - de),
                        clamp01(delta_at(c, g, epsilon)),
                        clamp01(delta_at(c, g, epsilon - eps_error) + de)};
      });
  PrvDelta out{0.0, 0.0, 0.0};
  for (const auto& d : results) {
    out.lower = std::max(out.lower, d.lower);
    out.estimate = std::max(out.estimate, d.estimate);
    out.upper = std::max(out.upper, d.upper);
  }
  return out;
}

}  // namespace dptrain::accountant
