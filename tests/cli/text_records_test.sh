#!/usr/bin/env bash
# Language-model data as users keep it, through the CLI: JSONL records (one
# record = one privacy unit), user-level DP (--privacy-unit user), and a
# SentencePiece tokenizer trained here with spm_train whose model travels
# with the weights to `generate`. Everything is written by the test.
# Usage: text_records_test.sh DPTRAIN_BINARY
set -euo pipefail
dptrain=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }

sentences=("the cat sat on the mat" "a dog sat on the log" "the bird sang in the tree"
  "a fish swam in the pond")
for u in $(seq 0 19); do
  for k in $(seq 0 $((u % 4))); do
    printf '{"user": "person-%d", "text": "%s", "source": "notes"}\n' "$u" "${sentences[$k]}"
  done
done >records.jsonl

common=(train --task lm --model hawk-tiny --dataset jsonl:records.jsonl --sequence-length 32
  --noise-multiplier 1 --steps 2 --batch-size 4 --seed 3)

# Record level: 50 records, each one unit.
"$dptrain" "${common[@]}" --summary records.json >records.log 2>&1 ||
  { cat records.log; fail "train on JSONL records"; }
grep -q '^data: 50 records from records.jsonl: 0 cut to 32 tokens' records.log ||
  { cat records.log; fail "the data line of record-level JSONL"; }
grep -q 'privacy unit: one record (cut or padded to 32 bytes)' records.log ||
  { cat records.log; fail "the record-level privacy unit"; }
grep -q '"adjacency":"add_remove_one_record"' records.json || fail "record-level adjacency"

# User level: 20 users (the last 2 held out), at most 2 records each.
"$dptrain" "${common[@]}" --privacy-unit user --records-per-user 2 --summary users.json \
  >users.log 2>&1 || { cat users.log; fail "train with --privacy-unit user"; }
grep -q 'privacy unit: one user (the mean over at most 2 of their records of 32 bytes, clipped once); 18 users' users.log ||
  { cat users.log; fail "the user-level privacy unit"; }
grep -q '"adjacency":"add_remove_one_user"' users.json || fail "user-level adjacency"
grep -q '"train_users":18' users.json || fail "train_users in the summary"
grep -q '"sample_rate":0.222222' users.json || fail "q = 4 / 18 users"

# A record without a user is named by file and line.
printf '{"user": 1, "text": "ab"}\n{"text": "cd"}\n' >nouser.jsonl
if "$dptrain" train --task lm --model hawk-tiny --dataset jsonl:nouser.jsonl --privacy-unit user \
  --noise-multiplier 1 --steps 1 >nouser.log 2>&1; then fail "a record without a user was accepted"; fi
grep -q 'error: --dataset: nouser.jsonl: line 2: has no "user" field' nouser.log ||
  { cat nouser.log; fail "the missing-user error"; }

# SentencePiece: train a small tokenizer, train with it, generate without
# naming it again (it is stored with the weights).
for i in $(seq 1 100); do printf '%s\n' "${sentences[@]}"; done >corpus.txt
spm_train --input=corpus.txt --model_prefix=sp --vocab_size=40 --model_type=bpe \
  --character_coverage=1.0 --minloglevel=2 >spm.log 2>&1 || { cat spm.log; fail "spm_train"; }
"$dptrain" train --task lm --model hawk-tiny --dataset text:corpus.txt --tokenizer sp.model \
  --sequence-length 16 --noise-multiplier 1 --steps 2 --batch-size 8 --seed 3 \
  --save-weights w.pt --summary sp.json >sp.log 2>&1 || { cat sp.log; fail "train with --tokenizer"; }
grep -q '(tokenizer sentencepiece:sp.model, vocabulary 40)' sp.log || { cat sp.log; fail "the tokenizer line"; }
grep -q '"vocab_size":40' sp.json || fail "the model's vocabulary is the tokenizer's"
"$dptrain" generate --weights w.pt --prompt "the cat" --num-tokens 5 --temperature 0 >gen.log 2>&1 ||
  { cat gen.log; fail "generate with the stored tokenizer"; }
grep -q '^the cat' gen.log || { cat gen.log; fail "generate prints the prompt and its continuation"; }
if "$dptrain" generate --weights w.pt --prompt "x" --tokenizer none.model >bad.log 2>&1; then
  fail "a missing tokenizer was accepted"
fi
grep -q 'error: --tokenizer: none.model: no such file' bad.log || { cat bad.log; fail "the --tokenizer error"; }
echo "1 passed, 0 failed"
