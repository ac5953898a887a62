#!/usr/bin/env bash
# Builds the libFuzzer targets of the dataset parsers with clang (in its own
# build folder, no LibTorch compiled) and runs each for a bounded time on a
# small generated seed corpus. Any crash, sanitizer report or abort fails.
# Usage: bash scripts/fuzz.sh   (env: DPTRAIN_FUZZ_SECONDS per target,
#        default 30; DPTRAIN_FUZZ_BUILD_DIR, default build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${DPTRAIN_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${DPTRAIN_FUZZ_SECONDS:-30}

cxx=""
for c in clang++ clang++-16 clang++-15 clang++-14; do
  if command -v "$c" >/dev/null; then cxx=$(command -v "$c"); break; fi
done
if [[ -z $cxx ]]; then
  echo "fuzz.sh: clang++ not found (install clang and libclang-rt-dev)" >&2
  exit 1
fi
cc=${cxx/clang++/clang}

echo "== fuzz: configure ($build, $cxx)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DDPTRAIN_BUILD_FUZZERS=ON -DDPTRAIN_BUILD_TESTS=OFF \
  -DDPTRAIN_BUILD_BENCHMARKS=OFF -DDPTRAIN_BUILD_EXAMPLES=OFF \
  -DDPTRAIN_USE_PCH=OFF -DDPTRAIN_WERROR=ON >/dev/null
cmake --build "$build" --target fuzz_idx_parser fuzz_cifar_parser fuzz_image_decoder

# Seeds: valid files of each format (the fuzzer mutates from there).
seeds=$build/seeds
rm -rf "$seeds"
mkdir -p "$seeds/idx" "$seeds/cifar" "$seeds/image"
# IDX labels [4] and images [2, 3, 3], uint8.
printf '\x00\x00\x08\x01\x00\x00\x00\x04\x00\x01\x02\x09' >"$seeds/idx/labels"
{ printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x03'
  head -c 18 /dev/urandom; } >"$seeds/idx/images"
# IDX int32 [2] and float64 [1, 1].
printf '\x00\x00\x0c\x01\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02' \
  >"$seeds/idx/int32"
{ printf '\x00\x00\x0e\x02\x00\x00\x00\x01\x00\x00\x00\x01'
  head -c 8 /dev/zero; } >"$seeds/idx/float64"
# CIFAR-10: two records; CIFAR-100: one record (coarse, fine).
{ printf '\x03'; head -c 3072 /dev/urandom; printf '\x09'
  head -c 3072 /dev/zero; } >"$seeds/cifar/cifar10"
{ printf '\x13\x63'; head -c 3072 /dev/urandom; } >"$seeds/cifar/cifar100"

# An 8x8 grey PNG, a 12x10 RGB PNG and a 10x12 JPEG (the CLI test's images).
for f in png_grey png_rgb jpeg_rgb; do
  sed -n "s/^$f=//p" tests/cli/image_data_test.sh | base64 -d >"$seeds/image/$f"
done

status=0
for target in idx cifar image; do
  corpus=$build/corpus/$target
  mkdir -p "$corpus"
  max_len=$([[ $target == idx ]] && echo 4096 || echo 16384)
  binary=fuzz_${target}_parser
  [[ $target == image ]] && binary=fuzz_image_decoder
  echo "== fuzz: $binary for ${seconds} s"
  if ! "$build/fuzz/$binary" -max_total_time="$seconds" \
      -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/" "$corpus" "$seeds/$target" \
      >"$build/fuzz_${target}.log" 2>&1; then
    echo "$binary FAILED; log: $build/fuzz_${target}.log" >&2
    tail -40 "$build/fuzz_${target}.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|Done [0-9]+ runs" \
      "$build/fuzz_${target}.log" | tail -2
  fi
done
exit $status
