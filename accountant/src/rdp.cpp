#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "dptrain/accountant/detail/numeric.h"
#include "dptrain/accountant/rdp_accountant.h"
#include "dptrain/accountant/rdp_math.h"

namespace dptrain::accountant {

using detail::fail;
using detail::fmt;
using detail::kInf;
using detail::log_add;

namespace detail {
namespace {

constexpr int kMaxTableOrder = 4096;

// log k! for k <= kMaxTableOrder, built once.
const std::vector<double>& log_factorials() {
  static const std::vector<double> table = [] {
    std::vector<double> t(kMaxTableOrder + 1);
    for (int k = 0; k <= kMaxTableOrder; ++k) {
      t[k] = std::lgamma(static_cast<double>(k) + 1.0);
    }
    return t;
  }();
  return table;
}

double log_factorial(int k) {
  if (k <= kMaxTableOrder) return log_factorials()[k];
  return std::lgamma(static_cast<double>(k) + 1.0);
}

// A signed number kept as sign · exp(log_mag).
struct SignedLog {
  int sign = 0;
  double log_mag = -kInf;

  void add(int s, double l) {
    if (l == -kInf) return;
    if (sign == 0) {
      sign = s;
      log_mag = l;
    } else if (s == sign) {
      log_mag = log_add(log_mag, l);
    } else if (l < log_mag) {
      log_mag += std::log1p(-std::exp(l - log_mag));
    } else if (l > log_mag) {
      log_mag = l + std::log1p(-std::exp(log_mag - l));
      sign = s;
    } else {
      sign = 0;
      log_mag = -kInf;
    }
  }
};

}  // namespace

double log_a_integer(double q, double sigma, int order) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double inv_2s2 = 1.0 / (2.0 * sigma * sigma);
  const double log_n_fact = log_factorial(order);
  // A − 1 = Σ_{i>=2} C(α,i) q^i (1−q)^{α−i} (exp((i²−i)/(2σ²)) − 1), since
  // the binomial weights sum to 1 and the i = 0, 1 terms have exponent 0.
  thread_local std::vector<double> terms;
  terms.clear();
  double hi = -kInf;
  for (int i = 2; i <= order; ++i) {
    const double di = i;
    const double x = (di * di - di) * inv_2s2;
    if (!(x > 0.0)) continue;  // σ so large the exponent underflows
    const double t = log_n_fact - log_factorial(i) - log_factorial(order - i) +
                     di * log_q + (order - i) * log_1mq + detail::log_expm1(x);
    terms.push_back(t);
    hi = std::max(hi, t);
  }
  if (hi == -kInf) return 0.0;
  double sum = 0.0;
  for (double t : terms) sum += std::exp(t - hi);
  const double log_am1 = hi + std::log(sum);
  // log A = log(1 + (A − 1)).
  return log_am1 > 30.0 ? log_am1 + std::log1p(std::exp(-log_am1))
                        : std::log1p(std::exp(log_am1));
}

double log_a_series(double q, double sigma, double alpha, bool* converged) {
  // Past this the series converges slowly (polynomially); the integral is
  // then cheaper and just as accurate.
  constexpr int kMaxTerms = 256;
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double inv_2s2 = 1.0 / (2.0 * sigma * sigma);
  const double sqrt2_sigma = std::sqrt(2.0) * sigma;
  const double z0 = sigma * sigma * (log_1mq - log_q) + 0.5;
  const double log_half = std::log(0.5);
  SignedLog a0;
  SignedLog a1;
  double log_coef = 0.0;  // log |C(α, i)|
  int sign = 1;           // sign of C(α, i)
  *converged = false;
  for (int i = 0; i < kMaxTerms; ++i) {
    const double di = i;
    const double j = alpha - di;
    const double log_t0 = log_coef + di * log_q + j * log_1mq;
    const double log_t1 = log_coef + j * log_q + di * log_1mq;
    const double log_e0 = log_half + log_erfc((di - z0) / sqrt2_sigma);
    const double log_e1 = log_half + log_erfc((z0 - j) / sqrt2_sigma);
    const double log_s0 = log_t0 + (di * di - di) * inv_2s2 + log_e0;
    const double log_s1 = log_t1 + (j * j - j) * inv_2s2 + log_e1;
    a0.add(sign, log_s0);
    a1.add(sign, log_s1);
    if (di > alpha) {
      const double total = log_add(a0.log_mag, a1.log_mag);
      if (std::max(log_s0, log_s1) < total - 40.0) {
        *converged = true;
        break;
      }
    }
    const double ratio = alpha - di;  // C(α,i+1) = C(α,i)·(α−i)/(i+1)
    if (ratio == 0.0) {
      *converged = true;  // integer α: the series ends
      break;
    }
    log_coef += std::log(std::fabs(ratio)) - std::log(di + 1.0);
    if (ratio < 0.0) sign = -sign;
  }
  if (a0.sign < 0 || a1.sign < 0) *converged = false;
  return log_add(a0.sign > 0 ? a0.log_mag : -kInf,
                 a1.sign > 0 ? a1.log_mag : -kInf);
}

double log_a_integral(double q, double sigma, double alpha) {
  // A − 1 = ∫ N(x; 0, σ²) g(u(x)) dx with u = q·expm1(s), s = (2x−1)/(2σ²),
  // and g(u) = (1+u)^α − 1 − αu >= 0: E[u] = 0 under N(0, σ²), so the
  // linear term integrates to zero, and what is left has no cancellation
  // (full relative precision for tiny q).
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double s2 = sigma * sigma;
  const double lo = -12.0 * sigma;
  const double hi = alpha + 12.0 * sigma;
  // The integrand is analytic in a strip of half-width πσ² (and has width-σ
  // Gaussian factors): the trapezoid rule with h = min(σ, σ²)/3 is accurate
  // to about exp(−2π²·3) relative.
  const double h = std::min(sigma, s2) / 3.0;
  const auto n = static_cast<long>(std::ceil((hi - lo) / h));
  const double log_norm = -std::log(sigma * std::sqrt(2.0 * M_PI));
  // Taylor coefficients C(α, k), k = 2…9, for small |u|.
  double binom[10] = {1.0, alpha};
  for (int k = 2; k < 10; ++k) binom[k] = binom[k - 1] * (alpha - k + 1) / k;
  auto log_g = [&](double x) {
    const double s = (2.0 * x - 1.0) / (2.0 * s2);
    const double lu = log_add(log_1mq, log_q + s);  // log(1 + u)
    const double l1 = alpha * lu;                   // log((1 + u)^α)
    if (l1 > 30.0) {
      if (lu > 700.0) return l1;
      return l1 + std::log1p(-(1.0 + alpha * std::expm1(lu)) * std::exp(-l1));
    }
    const double u = std::expm1(lu);
    if (std::fabs(u) < 1e-3) {
      double sum = 0.0;
      double p = u * u;
      for (int k = 2; k < 10; ++k, p *= u) sum += binom[k] * p;
      return sum > 0.0 ? std::log(sum) : -kInf;
    }
    const double g = std::expm1(l1) - alpha * u;
    return g > 0.0 ? std::log(g) : -kInf;
  };
  double peak = -kInf;
  thread_local std::vector<double> values;
  values.resize(static_cast<std::size_t>(n) + 1);
  for (long k = 0; k <= n; ++k) {
    const double x = lo + k * h;
    const double v = -x * x / (2.0 * s2) + log_norm + log_g(x);
    values[static_cast<std::size_t>(k)] = v;
    peak = std::max(peak, v);
  }
  if (peak == -kInf) return 0.0;
  double sum = 0.0;
  for (double v : values) sum += std::exp(v - peak);
  const double log_am1 = peak + std::log(sum * h);
  return log_am1 > 30.0 ? log_am1 + std::log1p(std::exp(-log_am1))
                        : std::log1p(std::exp(log_am1));
}

namespace {

// Σ_{k=2}^{24} C(α,k) u^k for |u| < 0.1 (the terms fall by >= 10x each).
double taylor_g(double alpha, double u) {
  double coef = alpha * (alpha - 1.0) / 2.0;
  double p = u * u;
  double sum = coef * p;
  for (int k = 3; k <= 24; ++k) {
    coef *= (alpha - k + 1) / k;
    p *= u;
    sum += coef * p;
  }
  return sum;
}

}  // namespace

// log A_α for several fractional orders at once, on one shared x grid (the
// same integral as log_a_integral, summed in linear space when nothing can
// overflow, which is one exp per point and order).
std::vector<double> log_a_integral_many(double q, double sigma,
                                        const std::vector<double>& alphas) {
  std::vector<double> out(alphas.size(), 0.0);
  if (alphas.empty()) return out;
  const double alpha_max = *std::max_element(alphas.begin(), alphas.end());
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double s2 = sigma * sigma;
  const double lo = -12.0 * sigma;
  const double hi = alpha_max + 12.0 * sigma;
  const double h = std::min(sigma, s2) / 3.0;
  const auto n = static_cast<std::size_t>(std::ceil((hi - lo) / h)) + 1;
  const double log_norm = -std::log(sigma * std::sqrt(2.0 * M_PI));
  std::vector<double> log_phi(n), lu(n), u(n), phi(n);
  for (std::size_t k = 0; k < n; ++k) {
    const double x = lo + static_cast<double>(k) * h;
    const double s = (2.0 * x - 1.0) / (2.0 * s2);
    log_phi[k] = -x * x / (2.0 * s2) + log_norm;
    phi[k] = std::exp(log_phi[k]);
    lu[k] = log_add(log_1mq, log_q + s);
    u[k] = std::expm1(lu[k]);
  }
  for (std::size_t j = 0; j < alphas.size(); ++j) {
    const double alpha = alphas[j];
    double peak = -kInf;
    for (std::size_t k = 0; k < n; ++k) {
      peak = std::max(peak, log_phi[k] + alpha * lu[k]);
    }
    if (peak > 600.0) {  // would overflow in linear space
      out[j] = log_a_integral(q, sigma, alpha);
      continue;
    }
    double sum = 0.0;
    for (std::size_t k = 0; k < n; ++k) {
      if (std::fabs(u[k]) < 0.1) {
        sum += phi[k] * taylor_g(alpha, u[k]);
      } else {
        sum += std::exp(log_phi[k] + alpha * lu[k]) -
               phi[k] * (1.0 + alpha * u[k]);
      }
    }
    out[j] = std::log1p(std::max(sum * h, 0.0));
  }
  return out;
}

std::vector<double> rdp_curve(double q, double sigma,
                              const std::vector<double>& orders) {
  std::vector<double> out(orders.size(), 0.0);
  if (q == 1.0) {
    for (std::size_t k = 0; k < orders.size(); ++k) {
      out[k] = orders[k] / (2.0 * sigma * sigma);
    }
    return out;
  }
  std::vector<double> frac;
  std::vector<std::size_t> frac_index;
  int max_int = 1;
  for (std::size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k];
    if (a == std::floor(a) && a <= kMaxTableOrder) {
      max_int = std::max(max_int, static_cast<int>(a));
    } else {
      frac.push_back(a);
      frac_index.push_back(k);
    }
  }
  // Integer orders: log C(α,i) q^i (1−q)^{α−i} (e^{(i²−i)/(2σ²)} − 1), the
  // last factor shared by every order.
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double inv_2s2 = 1.0 / (2.0 * sigma * sigma);
  std::vector<double> log_em1(static_cast<std::size_t>(max_int) + 1, -kInf);
  for (int i = 2; i <= max_int; ++i) {
    const double x = (static_cast<double>(i) * i - i) * inv_2s2;
    if (x > 0.0) log_em1[static_cast<std::size_t>(i)] = log_expm1(x);
  }
  const auto& lf = log_factorials();
  std::vector<double> terms;
  for (std::size_t k = 0; k < orders.size(); ++k) {
    const double a = orders[k];
    if (!(a == std::floor(a) && a <= kMaxTableOrder)) continue;
    const int m = static_cast<int>(a);
    terms.clear();
    double top = -kInf;
    for (int i = 2; i <= m; ++i) {
      const double t = lf[m] - lf[i] - lf[m - i] + i * log_q +
                       (m - i) * log_1mq + log_em1[static_cast<std::size_t>(i)];
      terms.push_back(t);
      top = std::max(top, t);
    }
    double log_a = 0.0;
    if (top > -kInf) {
      double sum = 0.0;
      for (double t : terms) sum += std::exp(t - top);
      const double log_am1 = top + std::log(sum);
      log_a = log_am1 > 30.0 ? log_am1 + std::log1p(std::exp(-log_am1))
                             : std::log1p(std::exp(log_am1));
    }
    out[k] = log_a / (a - 1.0);
  }
  const std::vector<double> log_a = log_a_integral_many(q, sigma, frac);
  for (std::size_t j = 0; j < frac.size(); ++j) {
    out[frac_index[j]] = log_a[j] / (frac[j] - 1.0);
  }
  for (auto& r : out) r = std::isnan(r) ? kInf : std::max(r, 0.0);
  return out;
}

}  // namespace detail

namespace {

void check_order(double order) {
  if (!(order > 1.0) || !std::isfinite(order)) {
    fail("order must be finite and > 1, got " + fmt(order));
  }
  if (order > kMaxRdpOrder) {
    fail("order " + fmt(order) + " is above the largest supported RDP order " +
         fmt(kMaxRdpOrder));
  }
}

}  // namespace

std::vector<double> opacus_orders() {
  std::vector<double> orders;
  for (int x = 1; x < 100; ++x) orders.push_back(1.0 + x / 10.0);
  for (int a = 12; a < 64; ++a) orders.push_back(a);
  return orders;
}

std::vector<double> default_orders() {
  std::vector<double> orders = {1.02, 1.04, 1.06, 1.08};
  for (int x = 1; x < 100; ++x) orders.push_back(1.0 + x / 10.0);
  for (int a = 11; a < 64; ++a) orders.push_back(a);
  for (int a :
       {72, 80, 96, 112, 128, 160, 192, 256, 384, 512, 768, 1024, 2048, 4096}) {
    orders.push_back(a);
  }
  return orders;
}

double compute_rdp(double sample_rate, double noise_multiplier, double order) {
  PoissonSampledGaussian event{sample_rate, noise_multiplier, 1};
  validate(event);
  check_order(order);
  return detail::rdp_curve(sample_rate, noise_multiplier, {order})[0];
}

RdpAccountant::RdpAccountant(RdpOptions options)
    : options_(std::move(options)) {
  if (options_.orders.empty()) fail("orders must not be empty");
  if (options_.orders.size() > kMaxRdpOrderCount) {
    fail("orders lists " + std::to_string(options_.orders.size()) +
         " orders; at most " + std::to_string(kMaxRdpOrderCount));
  }
  for (double a : options_.orders) check_order(a);
}

void RdpAccountant::compose(const PoissonSampledGaussian& event) {
  append_event(history_, event);
}

void RdpAccountant::set_history(EventHistory events) {
  for (const auto& e : events) validate(e);
  total_steps(events);  // throws on overflow
  history_ = std::move(events);
}

std::vector<double> RdpAccountant::rdp() const {
  std::vector<double> out(options_.orders.size(), 0.0);
  for (const auto& e : history_) {
    if (e.steps == 0) continue;
    const std::vector<double> one =
        detail::rdp_curve(e.sample_rate, e.noise_multiplier, options_.orders);
    for (std::size_t k = 0; k < out.size(); ++k) {
      out[k] += static_cast<double>(e.steps) * one[k];
    }
  }
  return out;
}

RdpEpsilon RdpAccountant::get_epsilon(double delta) const {
  detail::check_delta(delta);
  RdpEpsilon best{kInf, 0.0};
  if (total_steps(history_) == 0) return {0.0, 0.0};
  const std::vector<double> r = rdp();
  const double log_delta = std::log(delta);
  for (std::size_t k = 0; k < r.size(); ++k) {
    const double a = options_.orders[k];
    double eps = kInf;
    if (std::isnan(r[k]) || r[k] == kInf) continue;
    if (delta * delta + std::expm1(-r[k]) > 0.0) {
      eps = 0.0;  // KL bound: δ(0) = TV <= sqrt(1 − exp(−KL)) <= δ
    } else if (a > 1.01) {  // the bound below is unstable as α → 1
      eps = r[k] + std::log1p(-1.0 / a) - (log_delta + std::log(a)) / (a - 1.0);
    }
    if (eps < best.epsilon) best = {eps, a};
  }
  best.epsilon = std::max(best.epsilon, 0.0);
  return best;
}

double RdpAccountant::get_delta(double epsilon) const {
  if (!(epsilon >= 0.0) || !std::isfinite(epsilon)) {
    fail("epsilon must be finite and >= 0, got " + fmt(epsilon));
  }
  if (total_steps(history_) == 0) return 0.0;
  const std::vector<double> r = rdp();
  double best = 1.0;
  for (std::size_t k = 0; k < r.size(); ++k) {
    const double a = options_.orders[k];
    if (std::isnan(r[k]) || r[k] == kInf) continue;
    best = std::min(best, std::sqrt(-std::expm1(-r[k])));
    if (a > 1.01) {
      const double log_d =
          (a - 1.0) * (r[k] - epsilon + std::log1p(-1.0 / a)) - std::log(a);
      best = std::min(best, std::exp(log_d));
    }
  }
  return best;
}

}  // namespace dptrain::accountant
