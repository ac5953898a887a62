// Process-wide runtime settings: threads, BLAS check, device selection.
#pragma once

#include <string>

#include <c10/core/Device.h>

namespace dptrain::train {

/// "dptrain 0.1.0 (LibTorch x.y.z)".
std::string version_string();

/// Sets LibTorch's intra-op thread count, and OpenBLAS's own thread pool to
/// one thread (LibTorch's threads call the BLAS; see runtime.cpp for the
/// measurements) unless OPENBLAS_NUM_THREADS is set in the environment.
/// `threads` = 0 uses one thread per hardware thread (LibTorch 1.13
/// defaults to 1 on small VMs).
/// Throws std::invalid_argument for a negative or absurd count.
void set_num_threads(int threads);
/// Sets the loaded OpenBLAS's own pool to `threads`; false (nothing done)
/// when the BLAS is not OpenBLAS.
bool set_blas_num_threads(int threads);
/// The loaded OpenBLAS's own thread count, or 0 when the BLAS is not
/// OpenBLAS.
int blas_num_threads();

/// Keeps freed large blocks in the process for the next step instead of
/// returning them to the OS: glibc's mmap threshold set to 32 MiB (its
/// most) and its trim threshold to 1 GiB, so that a step's tensors reuse
/// the last step's memory rather than being mapped and zero-filled afresh
/// (benchmarks/RESULTS.md, "Allocation"). Does nothing, and returns false,
/// when GLIBC_TUNABLES, MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ is
/// set (the user's choice), when DPTRAIN_MALLOC=default, or without glibc.
/// DPTRAIN_MALLOC=heap also stops glibc mapping any block on its own
/// (M_MMAP_MAX 0): faster for tensors above 32 MiB, a higher peak.
bool configure_allocator();
/// What configure_allocator did: "kept (mmap threshold 32 MiB, trim 1 GiB)",
/// or "glibc defaults" with the reason.
std::string allocator_summary();

/// Path of the BLAS shared library mapped into this process (read from
/// /proc/self/maps), or "" when none is found (e.g. not Linux).
std::string loaded_blas_library();

/// True when the loaded BLAS is OpenBLAS (reference BLAS is ~27x slower).
bool blas_is_openblas();

/// Parses "cpu", "cuda", "cuda:1", "mps", "auto" ("auto": CUDA when available,
/// else CPU). Throws std::invalid_argument naming the flag value otherwise,
/// or when the device is not available in this build.
c10::Device parse_device(const std::string& spec);

/// Multi-line human-readable summary (version, threads, BLAS, CUDA).
std::string runtime_summary();

}  // namespace dptrain::train
