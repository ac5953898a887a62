// Nanoseconds per Gaussian coordinate of the noise sources, in one process:
//   secure   SecureNoise (ChaCha20 + sums of four Box–Muller draws, the
//            vectorised kernel; what every secure run uses)
//   libm     the same algorithm on the same ChaCha20 words with libm's log,
//            cos and sin, one coordinate pair at a time (the implementation
//            SecureNoise had before the kernel), parallelised the same way
//   chacha   the ChaCha20 words alone that secure consumes (4 per coordinate),
//            one thread
//   seeded   SeededNoise (LibTorch's normal_; reproducible runs only)
// each drawing `--coordinates` values in float and in double, best of
// `--repeats`.
//
//   noise_bench [--coordinates 4000000] [--repeats 5] [--threads N]
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dptrain/dp/mechanism/noise_generator.h"
#include "dptrain/dp/mechanism/secure_random.h"

namespace {

using dptrain::dp::ChaChaKey;
using dptrain::dp::ChaChaStream;

// The scalar baseline: pair j of chunk c reads the same words as the kernel.
void libm_normals(const ChaChaKey& key, uint64_t stream_id, double* out,
                  int64_t numel) {
  constexpr int64_t kChunk = 4096;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const int64_t chunks = (numel + kChunk - 1) / kChunk;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    ChaChaStream stream(key, stream_id);
    for (int64_t c = begin; c < end; ++c) {
      stream.seek(static_cast<uint64_t>(c * kChunk * 4));
      const int64_t first = c * kChunk;
      const int64_t last = std::min(numel, first + kChunk);
      for (int64_t i = first; i < last; i += 2) {
        double a = 0.0;
        double b = 0.0;
        for (int k = 0; k < 4; ++k) {
          const double r =
              std::sqrt(-2.0 * std::log(stream.next_uniform_open_closed()));
          const double theta = kTwoPi * stream.next_uniform();
          a += r * std::cos(theta);
          b += r * std::sin(theta);
        }
        out[i] = 0.5 * a;
        if (i + 1 < last) out[i + 1] = 0.5 * b;
      }
    }
  });
}

double best_ns_per_coordinate(int repeats, int64_t n,
                              const std::function<void()>& draw) {
  draw();  // warm up: pages, thread pool
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    draw();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    best = std::min(best, s);
  }
  return best * 1e9 / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 4'000'000;
  int repeats = 5;
  int threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--coordinates") {
      n = std::atoll(argv[i + 1]);
    } else if (flag == "--repeats") {
      repeats = std::atoi(argv[i + 1]);
    } else if (flag == "--threads") {
      threads = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (n < 1 || repeats < 1 || threads < 0) {
    std::fprintf(stderr,
                 "--coordinates and --repeats must be >= 1, --threads >= 0\n");
    return 2;
  }
  if (threads > 0) at::set_num_threads(threads);
  dptrain::dp::SecureNoise secure;
  dptrain::dp::SeededNoise seeded(0);
  const ChaChaKey key = dptrain::dp::os_entropy_key();
  std::vector<double> buffer(static_cast<std::size_t>(n));
  std::printf("coordinates %lld, threads %d, best of %d\n",
              static_cast<long long>(n), at::get_num_threads(), repeats);
  std::printf("%-8s %12s %12s\n", "source", "float ns", "double ns");
  const auto row = [&](const char* name, const std::function<void()>& f32,
                       const std::function<void()>& f64) {
    const double b = best_ns_per_coordinate(repeats, n, f64);
    if (f32) {
      const double a = best_ns_per_coordinate(repeats, n, f32);
      std::printf("%-8s %12.2f %12.2f\n", name, a, b);
    } else {
      std::printf("%-8s %12s %12.2f\n", name, "-", b);
    }
  };
  row(
      "secure", [&] { secure.standard_normal(n, at::kFloat); },
      [&] { secure.standard_normal(n, at::kDouble); });
  row("libm", nullptr, [&] { libm_normals(key, 0, buffer.data(), n); });
  std::vector<uint64_t> words(static_cast<std::size_t>(4 * n));
  row("chacha", nullptr, [&] {
    ChaChaStream stream(key, 1);
    stream.fill(words.data(), words.size());
  });
  row(
      "seeded", [&] { seeded.standard_normal(n, at::kFloat); },
      [&] { seeded.standard_normal(n, at::kDouble); });
  return 0;
}
