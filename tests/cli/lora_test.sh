#!/usr/bin/env bash
# LoRA fine-tuning of a language model through the CLI: only the adapters
# train (the log and summary say how many parameters), --save-weights writes
# the merged model, which `generate` reads as plain Griffin weights.
# Usage: lora_test.sh DPTRAIN_BINARY TEXT_FILE
set -euo pipefail
dptrain=$1
text=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
common=(train --task lm --model hawk-tiny --dataset "text:$text" --sequence-length 16
  --noise-multiplier 1 --steps 2 --batch-size 4 --seed 3)
"$dptrain" "${common[@]}" --lora-rank 2 --lora-alpha 4 --save-weights w.pt --summary s.json \
  >lora.log 2>&1 || { cat lora.log; fail "train --lora-rank"; }
grep -q '^LoRA: rank 2, alpha 4, on [0-9]* Linear layers (blocks\\.); trainable parameters [0-9]* (the adapters); the base.s 11408 are frozen' lora.log ||
  { cat lora.log; fail "the LoRA log line"; }
lora_params=$(grep -o '"trainable_parameters":[0-9]*' s.json | cut -d: -f2)
"$dptrain" "${common[@]}" --summary full.json >full.log 2>&1 || { cat full.log; fail "full fine-tuning"; }
full_params=$(grep -o '"trainable_parameters":[0-9]*' full.json | cut -d: -f2)
[[ $lora_params -gt 0 && $lora_params -lt $full_params ]] ||
  fail "LoRA trains $lora_params parameters, full fine-tuning $full_params"
grep -q '"weights_saved":"merged' s.json || fail "the summary does not say the weights are merged"
"$dptrain" generate --weights w.pt --prompt "the " --num-bytes 4 --seed 1 >gen.log 2>&1 ||
  { cat gen.log; fail "generate from the merged weights"; }
echo "1 passed, 0 failed"
