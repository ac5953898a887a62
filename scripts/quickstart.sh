#!/usr/bin/env bash
# Installs what is missing, builds the dptrain command, and runs the main job:
# private training of the tanh CNN on Fashion-MNIST at epsilon = 3, delta = 1e-5
# (configs/fashion_mnist_cnn_eps3_10epochs.toml: 10 epochs, a few minutes on 2
# cores; the full 40-epoch run is configs/fashion_mnist_cnn_eps3.toml). Extra
# arguments go to `dptrain train`.
# Usage (as root): bash scripts/quickstart.sh [flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=${DPTRAIN_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDPTRAIN_BUILD_TESTS=OFF -DDPTRAIN_BUILD_BENCHMARKS=OFF -DDPTRAIN_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target dptrain -j "$(nproc)"
"$build/cli/dptrain" data info /usr/share/datasets/fashion-mnist
mkdir -p out
"$build/cli/dptrain" train --config configs/fashion_mnist_cnn_eps3_10epochs.toml \
  --summary out/quickstart_summary.json "$@"
