#!/usr/bin/env bash
# --mixed-precision bf16 trains (issue 17): the log says what runs in bf16,
# a seeded bf16 run ends near the float32 run with the same seed (the same
# batches and noise) but not equal to it (the forward did run in bf16), and
# the summary records the setting; a Hawk LM (RG-LRU, local attention)
# trains under it too. Usage: mixed_precision_test.sh DPTRAIN_BINARY TEXT
set -euo pipefail
dptrain=$1
text=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
run() {  # precision summary log
  "$dptrain" train --model cnn --noise-multiplier 0.8 --batch-size 256 --steps 60 \
    --lr 2 --seed 3 --mixed-precision "$1" --summary "$2" >"$3" 2>&1 ||
    { cat "$3"; fail "the $1 run failed"; }
}
run no fp32.json fp32.log
run bf16 bf16.json bf16.log
grep -q "mixed precision: the training forward autocasts to bf16 on cpu" bf16.log ||
  fail "the bf16 run does not say so: $(cat bf16.log)"
! grep -q "mixed precision" fp32.log || fail "the float32 run mentions mixed precision"
grep -q '"mixed_precision":"bf16"' bf16.json ||
  fail "the summary does not record bf16: $(cat bf16.json)"
acc() { grep -o '"test_accuracy":[0-9.e+-]*' "$1" | head -1 | cut -d: -f2; }
a=$(acc fp32.json)
b=$(acc bf16.json)
[[ -n "$a" && -n "$b" ]] || fail "no test_accuracy in the summaries"
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0.6 && b > 0.6 && d < 0.03) }' ||
  fail "test accuracy float32 $a, bf16 $b: want both > 0.6 and within 0.03"
# What the weights decide, less the setting and the wall time: differs.
figures() { sed -e 's/"wall_seconds":[0-9.e+-]*//' -e 's/"summary":"[^"]*"//' -e 's/"mixed_precision":"[a-z0-9]*"//' "$1"; }
[[ "$(figures fp32.json)" != "$(figures bf16.json)" ]] ||
  fail "bf16 and float32 ended with the same figures (did the forward run in bf16?)"
"$dptrain" train --task lm --model hawk-tiny --dataset "text:$text" --sequence-length 16 \
  --batch-size 4 --steps 2 --noise-multiplier 1 --mixed-precision bf16 --summary lm.json \
  >lm.log 2>&1 || { cat lm.log; fail "the hawk-tiny bf16 run failed"; }
grep -q "autocasts to bf16" lm.log || fail "the LM run does not say bf16"
grep -q '"perplexity":[0-9]' lm.json || fail "the LM run has no finite perplexity: $(cat lm.json)"
echo "1 passed, 0 failed"
