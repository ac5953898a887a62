#!/usr/bin/env bash
# --seed makes a whole run reproducible (initialisation, sampling,
# augmentation, noise): two runs with one seed end with identical weights —
# every figure of the summary computed from them agrees — and another seed
# gives another run. Usage: seed_reproducible_test.sh DPTRAIN_BINARY
set -euo pipefail
dptrain=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
run() {
  "$dptrain" train --model cnn --noise-multiplier 1 --batch-size 64 --steps 3 --augmult 2 \
    --lr 0.5 --seed "$1" --summary "$2" >/dev/null 2>&1
}
# What the weights decide: every test-set figure (accuracy, loss, per class).
figures() { sed -e 's/"wall_seconds":[0-9.e+-]*//' -e 's/"summary":"[^"]*"//' "$1"; }
run 5 a.json
run 5 b.json
run 6 c.json
[[ "$(figures a.json)" == "$(figures b.json)" ]] ||
  { echo "FAIL: two runs with --seed 5 differ:"; diff <(figures a.json) <(figures b.json); exit 1; }
[[ "$(figures a.json)" != "$(figures c.json)" ]] ||
  { echo "FAIL: --seed 5 and --seed 6 gave the same run"; exit 1; }
echo "1 passed, 0 failed"
