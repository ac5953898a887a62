#!/usr/bin/env bash
# Installs what is missing, builds the dptrain command, and runs the main job:
# private training on Fashion-MNIST with the default budget.
# Usage (as root): bash scripts/quickstart.sh [extra `dptrain train` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=${DPTRAIN_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDPTRAIN_BUILD_TESTS=OFF -DDPTRAIN_BUILD_BENCHMARKS=OFF -DDPTRAIN_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target dptrain -j "$(nproc)"
"$build/cli/dptrain" data info /usr/share/datasets/fashion-mnist
