#!/usr/bin/env bash
# Installs what dptrain needs from Debian's packages (12 and 13). Idempotent: once
# everything is present it only checks, in well under a second.
# Usage (as root): bash scripts/setup.sh [--with-fuzz]
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev libopenblas0-pthread libeigen3-dev libboost-math-dev
  libcli11-dev libhdf5-dev libgloo-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libtoml11-dev libfftw3-dev zlib1g-dev libpng-dev libjpeg-dev
  libsentencepiece-dev sentencepiece
  dataset-fashion-mnist clang-format
)
if [[ "${1:-}" == "--with-fuzz" ]]; then
  # The unversioned metapackage follows the release's default clang (14 on
  # Debian 12, 19 on Debian 13); libclang-rt-14-dev does not exist on 13.
  packages+=(clang libclang-rt-dev)
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: error: missing packages and not root; run as root or install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when they are absent or the install fails on them.
  if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    apt-get update -qq
  fi
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# LibTorch must resolve BLAS to OpenBLAS: reference BLAS is ~27x slower here.
# Each command's whole output is read before it is parsed: a pipe into a reader
# that stops early (awk's exit, grep -m1) can end the writer with SIGPIPE, and
# under pipefail and set -e that failed this script silently on a busy machine.
blas_of() {
  local listing
  listing=$(ldd "$1") || return 1
  awk '/libblas.so/ {print $3; exit}' <<<"$listing"
}
torch_lib=/usr/lib/x86_64-linux-gnu/libtorch_cpu.so
if [[ ! -e "$torch_lib" ]]; then
  cache=$(ldconfig -p)
  torch_lib=$(awk '/libtorch_cpu.so / {print $NF; exit}' <<<"$cache")
fi
if [[ -z "$torch_lib" || ! -e "$torch_lib" ]]; then
  echo "setup: error: libtorch_cpu.so not found (is libtorch-dev installed?)" >&2
  exit 1
fi
blas=$(blas_of "$torch_lib")
blas_real=$(readlink -f "$blas" 2>/dev/null || echo "$blas")
if [[ "$blas_real" != *openblas* ]]; then
  machine=$(gcc -dumpmachine)
  alternatives=$(update-alternatives --list "libblas.so.3-$machine" 2>/dev/null || true)
  alt=$(grep -m1 openblas <<<"$alternatives" || true)
  if [[ -n "$alt" && $(id -u) -eq 0 ]]; then
    update-alternatives --set "libblas.so.3-$machine" "$alt" >/dev/null
    blas_real=$(readlink -f "$(blas_of "$torch_lib")")
  fi
fi
if [[ "$blas_real" != *openblas* ]]; then
  echo "setup: error: LibTorch loads BLAS from '$blas_real', not OpenBLAS (install libopenblas0-pthread)" >&2
  exit 1
fi
echo "setup: ok (BLAS: $blas_real)"
