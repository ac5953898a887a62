#!/usr/bin/env bash
# The dptrain launcher (cli/launcher) against dptrain-torch: it does not link
# LibTorch, says the same version, answers account and calibrate itself with
# dptrain-torch's figures, runs report without it, lists every subcommand in --help, hands the other
# commands to dptrain-torch, and names dptrain-torch when it cannot run it.
# Usage: launcher_test.sh DPTRAIN DPTRAIN_TORCH
set -uo pipefail
launcher=$1
torch=$2
passed=0
failed=0
check() {  # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); else echo "FAIL: $name"; failed=$((failed + 1)); fi
}

deps=$(ldd "$launcher")
check "launcher links no LibTorch" bash -c "! grep -q 'libtorch\|libc10' <<<\"\$1\"" _ "$deps"
torch_deps=$(ldd "$torch")
check "dptrain-torch links LibTorch" grep -q libtorch <<<"$torch_deps"

check "same --version" test "$("$launcher" --version)" = "$("$torch" --version)"
account=(account --noise-multiplier 1.1 --sample-rate 0.01 --steps 1000 --delta 1e-5 --json)
check "account: the same JSON" test "$("$launcher" "${account[@]}")" = "$("$torch" "${account[@]}")"
calibrate=(--threads 1 calibrate --target-epsilon 3 --delta 1e-5 --sample-rate 0.01 --steps 500 --json)
check "calibrate (after --threads): the same JSON" \
  test "$("$launcher" "${calibrate[@]}")" = "$("$torch" "${calibrate[@]}")"

help=$("$launcher" --help)
for name in info data model account calibrate report train generate diffusion bench audit; do
  check "--help lists $name" grep -q "^  $name" <<<"$help"
done
info=$("$launcher" info)
check "info runs in dptrain-torch" grep -q "threads:" <<<"$info"
check "an unknown command gets dptrain-torch's answer" \
  test "$("$launcher" no-such-command 2>&1)" = "$("$torch" no-such-command 2>&1)"

# A launcher copied away from dptrain-torch says which file it misses.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$launcher" "$dir/dptrain"
missing=$("$dir/dptrain" info 2>&1)
code=$?
check "missing dptrain-torch: exit 127" test "$code" = 127
check "missing dptrain-torch: named" grep -q "error: cannot run $dir/dptrain-torch" <<<"$missing"
check "account still runs without dptrain-torch" \
  test "$("$dir/dptrain" "${account[@]}")" = "$("$torch" "${account[@]}")"
echo '{"step":1,"epsilon":0.5}' >"$dir/run.jsonl"
check "report runs without dptrain-torch" "$dir/dptrain" report "$dir/run.jsonl" --out "$dir/r.html"
check "report wrote the page" grep -q '<svg class="chart"' "$dir/r.html"

echo "$passed passed, $failed failed"
test "$failed" = 0
