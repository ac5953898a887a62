#!/usr/bin/env bash
# The GPU check of issue 17, for a CUDA machine with PyTorch installed (the
# kind the device tool lends): builds dptrain against that PyTorch's LibTorch,
# runs the tests labelled `cuda` (engine vs the float64 microbatch oracle on
# the GPU, and the engine under bf16 autocast) and `dptrain bench step
# --device cuda` for wrn-16-4 (B = 256; also with --mixed-precision bf16),
# nfnet-f0 (B = 32) and the diffusion UNet, and prints one JSON object (also
# written to $DPTRAIN_GPU_OUT, default gpu_check.json). Without a GPU, or
# without a CUDA PyTorch, it prints {"skipped": "<why>"} and exits 0.
#
# The build needs, besides PyTorch: CMake, Ninja or make, a C++17 compiler,
# and the headers and libraries dptrain builds against on Debian (Eigen,
# Boost.Math, CLI11, nlohmann-json, toml11, HDF5, zlib, libpng, libjpeg,
# GoogleTest). On a Debian/Ubuntu machine with a package mirror, setup.sh's
# list is installed with apt-get; otherwise give DPTRAIN_GPU_DEPS=DIR, a
# folder with usr/include and usr/lib of those packages unpacked (dpkg -x of
# the .debs on a Debian machine), which is put on the search paths.
# Budget: 12 minutes on one H200 including the build (DPTRAIN_GPU_JOBS
# compile jobs, default all cores). Not yet run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${DPTRAIN_GPU_OUT:-$root/gpu_check.json}
build=${DPTRAIN_GPU_BUILD:-$root/build-gpu}
start=$SECONDS

skip() {
  printf '{"skipped": "%s"}\n' "$1" | tee "$out"
  exit 0
}

command -v nvidia-smi >/dev/null 2>&1 || skip "no nvidia-smi: no NVIDIA GPU on this machine"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) || true
[[ -n "$gpu" ]] || skip "nvidia-smi lists no GPU"
command -v python3 >/dev/null 2>&1 || skip "no python3 (needed to find PyTorch's LibTorch)"
torch_info=$(python3 -c 'import torch
print(torch.utils.cmake_prefix_path)
print(torch.__version__)
print(int(torch.cuda.is_available()))
print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null) || skip "python3 cannot import torch"
{ read -r prefix; read -r torch_version; read -r has_cuda; read -r cxx11_abi; } <<<"$torch_info"
[[ "$has_cuda" == 1 ]] || skip "torch $torch_version has no CUDA device"

if [[ -n "${DPTRAIN_GPU_DEPS:-}" ]]; then
  export CMAKE_PREFIX_PATH="$DPTRAIN_GPU_DEPS/usr:${CMAKE_PREFIX_PATH:-}"
  export CPATH="$DPTRAIN_GPU_DEPS/usr/include:${CPATH:-}"
  export LIBRARY_PATH="$DPTRAIN_GPU_DEPS/usr/lib/x86_64-linux-gnu:${LIBRARY_PATH:-}"
  export LD_LIBRARY_PATH="$DPTRAIN_GPU_DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
elif command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
  apt-get install -y --no-install-recommends cmake ninja-build g++ libeigen3-dev libboost-dev \
    libcli11-dev nlohmann-json3-dev libtoml11-dev libhdf5-dev zlib1g-dev libpng-dev \
    libjpeg-dev libgtest-dev >/dev/null || true
fi

jobs=${DPTRAIN_GPU_JOBS:-$(nproc)}
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
echo "== configure against $prefix (torch $torch_version, CXX11 ABI $cxx11_abi) ($((SECONDS - start)) s)" >&2
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DDPTRAIN_BUILD_BENCHMARKS=OFF -DDPTRAIN_BUILD_EXAMPLES=OFF \
  -DCMAKE_CXX_FLAGS="-D_GLIBCXX_USE_CXX11_ABI=$cxx11_abi" >&2
echo "== build ($((SECONDS - start)) s)" >&2
cmake --build "$build" -j "$jobs" --target dptrain dptrain-torch dp_tests >&2
build_s=$((SECONDS - start))

echo "== ctest -L cuda ($((SECONDS - start)) s)" >&2
cuda_tests=passed
ctest --test-dir "$build" -L cuda --output-on-failure >&2 || cuda_tests=failed

bench() {  # model batch steps [more flags]
  "$build/cli/dptrain" bench step --device cuda --model "$1" --batch-size "$2" \
    --steps "$3" --warmup 1 --json "${@:4}" 2>/dev/null || echo '{"error": "bench step failed"}'
}
echo "== bench step ($((SECONDS - start)) s)" >&2
wrn=$(bench wrn-16-4 256 5)
wrn_bf16=$(bench wrn-16-4 256 5 --mixed-precision bf16)
nfnet=$(bench nfnet-f0 32 3)
unet=$(bench unet-small 64 5)
printf '{"gpu": "%s", "torch": "%s", "build_seconds": %d, "cuda_tests": "%s", "bench": {"wrn-16-4_b256": %s, "wrn-16-4_b256_bf16": %s, "nfnet-f0_b32": %s, "unet-small_b64": %s}, "seconds": %d}\n' \
  "$gpu" "$torch_version" "$build_s" "$cuda_tests" "$wrn" "$wrn_bf16" "$nfnet" "$unet" "$((SECONDS - start))" |
  tee "$out"
[[ "$cuda_tests" == passed ]]
