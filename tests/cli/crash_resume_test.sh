#!/usr/bin/env bash
# kill -9 a private training run at several moments, resume it, and check the
# privacy record (invariant 7): the run completes, the checkpoint loads, and
# steps_accounted counts every step ever executed, including those lost since
# the last checkpoint and run again.
# Usage: crash_resume_test.sh DPTRAIN_BINARY
set -euo pipefail
dptrain=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

total=120
args=(train --model mlp --noise-multiplier 1 --batch-size 256 --steps "$total"
      --checkpoint c.ckpt --checkpoint-every 7 --summary s.json)

steps_on_ledger() {
  if [[ -f c.ckpt.ledger ]]; then grep -c '^step ' c.ckpt.ledger || true; else echo 0; fi
}
json_int() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" s.json; }

fail() { echo "FAIL: $*" >&2; exit 1; }

# Kill points: after this many steps are on the ledger (each point resumes
# the run the previous one left, so the interruptions chain).
kill_points=(10 30 55)
started=0
for k in "${kill_points[@]}"; do
  if ((started)); then resume=(--resume); else resume=(); fi
  "$dptrain" "${args[@]}" "${resume[@]}" >"log.$k" 2>&1 &
  pid=$!
  started=1
  for _ in $(seq 1 600); do
    (($(steps_on_ledger) >= k)) && break
    kill -0 "$pid" 2>/dev/null || fail "run ended before step $k: $(tail -3 "log.$k")"
    sleep 0.05
  done
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  echo "killed at $(steps_on_ledger) steps on the ledger"
done

lost_before=$(steps_on_ledger)
"$dptrain" "${args[@]}" --resume >log.final 2>&1 || fail "resume failed: $(tail -3 log.final)"
resumed_at=$(sed -n 's/^resumed from c.ckpt at step \([0-9]*\) .*/\1/p' log.final)
[[ -n "$resumed_at" ]] || fail "no 'resumed from' line: $(head -3 log.final)"
steps=$(json_int steps)
accounted=$(json_int steps_accounted)
ledger=$(steps_on_ledger)
echo "resumed at step $resumed_at with $lost_before steps on the ledger; summary: steps $steps," \
     "steps_accounted $accounted; ledger $ledger"
((steps == total)) || fail "steps $steps, expected $total"
((accounted == ledger)) || fail "steps_accounted $accounted but the ledger has $ledger steps"
# Every step executed before the last kill, plus those run after the resume.
((accounted == lost_before + total - resumed_at)) ||
  fail "steps_accounted $accounted, expected $lost_before + $total - $resumed_at"
((accounted > total)) || fail "no lost step was accounted ($accounted <= $total)"
# The epsilon of the summary is that of steps_accounted steps, not of steps.
eps=$(sed -n 's/.*"epsilon":\([0-9.e+-]*\).*/\1/p' s.json)
"$dptrain" account --sample-rate 0.004266666666666667 --noise-multiplier 1 --steps "$accounted" \
  --delta 1e-5 --json >acc.json 2>&1 || fail "account failed: $(cat acc.json)"
expected=$(sed -n 's/.*"epsilon":\([0-9.e+-]*\).*/\1/p' acc.json)
[[ "$eps" == "$expected" ]] || fail "summary epsilon $eps is not that of $accounted steps ($expected)"
# The checkpoint left behind loads (a further resume with nothing to do).
"$dptrain" "${args[@]}" --resume >log.again 2>&1 || fail "checkpoint does not load: $(tail -3 log.again)"
echo "1 passed, 0 failed"
