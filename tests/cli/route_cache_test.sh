#!/usr/bin/env bash
# --routes measure writes the routes it measured to --route-cache; a run
# with --routes fixed and that file takes them without measuring (the file
# is left as it was) and, with the same seed, ends with the same weights;
# a malformed cache is an error naming the file and line.
# Usage: route_cache_test.sh DPTRAIN_BINARY
set -euo pipefail
dptrain=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
run() {
  "$dptrain" train --model cnn --noise-multiplier 1 --batch-size 64 --steps 2 \
    --lr 0.5 --seed 5 --summary "$1" "${@:2}" >"$1.log" 2>&1 ||
    { echo "FAIL: run $1 exited non-zero:"; cat "$1.log"; exit 1; }
}
figures() { sed -e 's/"wall_seconds":[0-9.e+-]*//' -e 's/"summary":"[^"]*"//' \
  -e 's/"routes":"[a-z]*"//' "$1"; }
run a.json --routes measure --route-cache routes.tsv
head -1 routes.tsv | grep -q '^# dptrain route cache v1' ||
  { echo "FAIL: routes.tsv has no header"; cat routes.tsv; exit 1; }
lines=$(grep -vc '^#' routes.tsv || true)
[[ $lines -ge 2 ]] || { echo "FAIL: expected >= 2 routes (the two convolutions), got $lines"; cat routes.tsv; exit 1; }
grep -q 'dptrain::dp::Conv2d(1, 16' routes.tsv ||
  { echo "FAIL: no route for the first convolution"; cat routes.tsv; exit 1; }
cp routes.tsv before.tsv
run b.json --routes fixed --route-cache routes.tsv
cmp -s routes.tsv before.tsv || { echo "FAIL: --routes fixed changed the cache"; exit 1; }
[[ "$(figures a.json)" == "$(figures b.json)" ]] ||
  { echo "FAIL: the fixed run differs from the measured run:"; diff <(figures a.json) <(figures b.json); exit 1; }
printf '# dptrain route cache v1\nnot a route line\n' >bad.tsv
if "$dptrain" train --model cnn --noise-multiplier 1 --steps 1 --routes fixed \
  --route-cache bad.tsv >bad.log 2>&1; then
  echo "FAIL: a malformed cache was accepted"; exit 1
fi
grep -q "error: route cache bad.tsv line 2" bad.log ||
  { echo "FAIL: the error does not name the file and line:"; cat bad.log; exit 1; }
echo "1 passed, 0 failed"
