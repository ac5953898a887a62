// Marks a function whose loops the compiler vectorises: GCC on x86-64 builds
// it three times, for AVX-512, AVX2 and the baseline (SSE2), and picks one at
// load time by the CPU (function multi-versioning). Elsewhere it is one plain
// function. The tests exercise the clone of the machine they run on.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DPTRAIN_SIMD_CLONES \
  __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DPTRAIN_SIMD_CLONES
#endif
