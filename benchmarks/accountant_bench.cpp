// Accountant speed: one ε for T = 10⁴ steps (RDP and PRV) and one noise
// calibration. Each iteration builds a fresh accountant, so nothing is cached.
// The Python references for the same work are in ../shared/reference/README.md
// and benchmarks/RESULTS.md.
#include <benchmark/benchmark.h>

#include "dptrain/accountant/calibration.h"
#include "dptrain/accountant/prv_accountant.h"
#include "dptrain/accountant/rdp_accountant.h"

namespace {

namespace acc = dptrain::accountant;

// The reference timing case: q = 0.01, σ = 1, T = 10⁴, δ = 1e-5.
constexpr acc::PoissonSampledGaussian kEvent{0.01, 1.0, 10000};

void BM_RdpEpsilonT1e4(benchmark::State& state) {
  for (auto _ : state) {
    acc::RdpAccountant rdp;
    rdp.compose(kEvent);
    benchmark::DoNotOptimize(rdp.get_epsilon(1e-5));
  }
}
BENCHMARK(BM_RdpEpsilonT1e4)->Unit(benchmark::kMillisecond);

void BM_PrvEpsilonT1e4(benchmark::State& state) {
  for (auto _ : state) {
    acc::PrvAccountant prv;
    prv.compose(kEvent);
    benchmark::DoNotOptimize(prv.get_epsilon(1e-5));
  }
}
BENCHMARK(BM_PrvEpsilonT1e4)->Unit(benchmark::kMillisecond);

// MNIST, batch 256, 60 epochs (the README landmark): T = 14062.
void BM_PrvEpsilonMnist60Epochs(benchmark::State& state) {
  for (auto _ : state) {
    acc::PrvAccountant prv;
    prv.compose({256.0 / 60000.0, 1.1, 14062});
    benchmark::DoNotOptimize(prv.get_epsilon(1e-5));
  }
}
BENCHMARK(BM_PrvEpsilonMnist60Epochs)->Unit(benchmark::kMillisecond);

void BM_CalibrateRdp(benchmark::State& state) {
  acc::NoiseCalibrationOptions o;
  o.target_epsilon = 1.0;
  o.delta = 1e-5;
  o.sample_rate = 0.01;
  o.steps = 10000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(acc::calibrate_noise_multiplier(o));
  }
}
BENCHMARK(BM_CalibrateRdp)->Unit(benchmark::kMillisecond);

void BM_CalibratePrv(benchmark::State& state) {
  acc::NoiseCalibrationOptions o;
  o.target_epsilon = 1.0;
  o.delta = 1e-5;
  o.sample_rate = 0.01;
  o.steps = 10000;
  o.accountant = acc::AccountantKind::kPrv;
  for (auto _ : state) {
    benchmark::DoNotOptimize(acc::calibrate_noise_multiplier(o));
  }
}
BENCHMARK(BM_CalibratePrv)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
