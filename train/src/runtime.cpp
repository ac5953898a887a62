#include "dptrain/train/runtime.h"

#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace dptrain::train {

std::string version_string() {
  std::ostringstream out;
  out << "dptrain 0.1.0 (LibTorch " << TORCH_VERSION_MAJOR << "."
      << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH << ")";
  return out.str();
}

namespace {
// configure_allocator's outcome, for allocator_summary.
std::string g_allocator = "glibc defaults (configure_allocator not called)";
}  // namespace

bool configure_allocator() {
#if defined(__GLIBC__)
  for (const char* name :
       {"GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}) {
    if (std::getenv(name) != nullptr) {
      g_allocator =
          std::string("glibc defaults or the user's (") + name + " is set)";
      return false;
    }
  }
  const char* choice = std::getenv("DPTRAIN_MALLOC");
  if (choice != nullptr && std::string(choice) == "default") {
    g_allocator = "glibc defaults (DPTRAIN_MALLOC=default)";
    return false;
  }
  // Measured on a 2-vCPU Intel Xeon (bench step, both variants alike, DP
  // ms default -> these): seq B=16 69-70 -> 51-54, WRN-16-4 B=32 424-449 ->
  // 405-407, with peak RSS within 2 %.
  constexpr int kMmapThreshold = 32 << 20;  // glibc's largest
  constexpr int kTrimThreshold = 1 << 30;
  bool ok = mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 &&
            mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
  // DPTRAIN_MALLOC=heap: no block is mapped on its own, so tensors above
  // 32 MiB are reused too (WRN-16-4 B=128 DP step 2187 -> 1729 ms on the
  // Xeon) at a higher peak (DP 2110 -> 2594 MB): opt-in.
  const bool heap = choice != nullptr && std::string(choice) == "heap";
  if (ok && heap) ok = mallopt(M_MMAP_MAX, 0) == 1;
  g_allocator = !ok    ? "glibc defaults (mallopt refused)"
                : heap ? "kept, heap only (mmap threshold 32 MiB, trim 1 GiB, "
                         "no mapped blocks: DPTRAIN_MALLOC=heap)"
                       : "kept (mmap threshold 32 MiB, trim 1 GiB)";
  return ok;
#else
  g_allocator = "the C library's defaults (not glibc)";
  return false;
#endif
}

std::string allocator_summary() { return g_allocator; }

void set_num_threads(int threads) {
  const int hardware =
      static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  // Each thread costs ~60 ms to start, and more than a few per core only
  // slows LibTorch down: 100000 used to hang for minutes.
  const int most = 4 * hardware;
  if (threads < 0 || threads > most) {
    throw std::invalid_argument(
        "--threads must be in [0, " + std::to_string(most) +
        "] (0 = one per hardware thread; at most 4 per hardware "
        "thread), got " +
        std::to_string(threads));
  }
  if (threads == 0) threads = hardware;
  at::set_num_threads(threads);
  // OpenBLAS's pthread build keeps its own pool, which at::set_num_threads
  // does not reach. LibTorch calls the BLAS from inside its own parallel
  // loops (convolutions over the batch, bmm), where a second pool of N
  // threads per caller oversubscribes the cores. Measured on a 2-core AMD
  // EPYC (bench step, LibTorch 2 threads, OpenBLAS 1 vs 2): WRN-16-4 B=32
  // 816 vs 901 ms non-private and 1013 vs 1242 ms DP, seq B=16 97 vs 139 and
  // 120 vs 204 ms, griffin-25m 3.7 vs 4.8 s; LibTorch 1 + OpenBLAS 2 was
  // slower still (WRN 1717 ms). So the BLAS runs on the calling thread,
  // unless the user set OPENBLAS_NUM_THREADS, which is then left alone.
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) set_blas_num_threads(1);
}

bool set_blas_num_threads(int threads) {
  using SetThreads = void (*)(int);
  if (auto* set_blas = reinterpret_cast<SetThreads>(
          dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_blas(threads);
    return true;
  }
  return false;
}

int blas_num_threads() {
  using GetThreads = int (*)();
  if (auto* get_blas = reinterpret_cast<GetThreads>(
          dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) {
    return get_blas();
  }
  return 0;
}

std::string loaded_blas_library() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::string fallback;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string name = path.substr(path.rfind('/') + 1);
    if (name.find("openblas") != std::string::npos) return path;
    if (name.rfind("libblas", 0) == 0 || name.rfind("libmkl", 0) == 0) {
      fallback = path;
    }
  }
  return fallback;
}

bool blas_is_openblas() {
  return loaded_blas_library().find("openblas") != std::string::npos;
}

c10::Device parse_device(const std::string& spec) {
  if (spec == "auto") {
    return torch::cuda::is_available() ? c10::Device(c10::kCUDA)
                                       : c10::Device(c10::kCPU);
  }
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(spec);
  } catch (const std::exception&) {
    throw std::invalid_argument("--device: unknown device '" + spec +
                                "' (expected cpu, cuda, cuda:N or auto)");
  }
  if (device.is_cuda() && !torch::cuda::is_available()) {
    throw std::invalid_argument(
        "--device " + spec +
        ": CUDA is not available in this build or machine");
  }
  if (device.is_cuda() && device.has_index() &&
      device.index() >= static_cast<int>(torch::cuda::device_count())) {
    throw std::invalid_argument("--device " + spec + ": only " +
                                std::to_string(torch::cuda::device_count()) +
                                " CUDA device(s) present");
  }
  return device;
}

std::string runtime_summary() {
  std::ostringstream out;
  const std::string blas = loaded_blas_library();
  out << version_string() << "\n"
      << "threads: " << at::get_num_threads() << " (hardware "
      << std::thread::hardware_concurrency() << ")\n"
      << "blas: " << (blas.empty() ? "unknown" : blas)
      << (blas_num_threads() > 0
              ? " (" + std::to_string(blas_num_threads()) + " threads)"
              : std::string())
      << (blas_is_openblas()
              ? ""
              : "  [warning: not OpenBLAS; matmuls will be slow]")
      << "\n"
      << "allocator: " << allocator_summary() << "\n"
      << "cuda: "
      << (torch::cuda::is_available()
              ? std::to_string(torch::cuda::device_count()) + " device(s)"
              : std::string("not available"))
      << "\n";
  return out.str();
}

}  // namespace dptrain::train
