#!/usr/bin/env bash
# dptrain launch: 2 and 3 local ranks over Gloo give the one-process run of a
# seeded configuration (every figure of the summary); a killed rank stops the
# others with a message naming it, the checkpoint stays intact, and a
# relaunch with --resume finishes the run with every step accounted; a rank
# that hangs stops the others after --collective-timeout.
# Usage: launch_test.sh DPTRAIN_BINARY
set -euo pipefail
dptrain=$1
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
port=$((20000 + ($$ % 1000) * 6))  # below the ephemeral ports (32768-)
args=(train --model cnn --noise-multiplier 1 --batch-size 64 --steps 3 --lr 0.5 --seed 5)
# What the weights decide, without the fields that name the run's files.
figures() {
  sed -e 's/"wall_seconds":[0-9.e+-]*//' -e 's/"summary":"[^"]*"//' \
    -e 's/,"distributed":"[^"]*"//' -e 's/,"world_size":[0-9]*//' "$1"
}
# The pid of rank 1 among the children of launcher $1, once `$2` is true.
rank1_of() {
  local launcher=$1 ready=$2 p
  for _ in $(seq 1 600); do
    if eval "$ready"; then
      for p in $(pgrep -P "$launcher"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'RANK=1'; then
          echo "$p"
          return
        fi
      done
    fi
    sleep 0.1
  done
}
passed=0
"$dptrain" --threads 1 "${args[@]}" --summary one.json >one.log 2>&1
for n in 2 3; do
  "$dptrain" launch --nproc "$n" --master-port $((port + n)) -- "${args[@]}" \
    --summary "w$n.json" >"w$n.log" 2>&1 || { echo "FAIL: $n ranks:"; cat "w$n.log"; exit 1; }
  grep -q "\"world_size\":$n" "w$n.json" || { echo "FAIL: summary lacks world_size $n"; exit 1; }
  [[ "$(figures one.json)" == "$(figures "w$n.json")" ]] ||
    { echo "FAIL: $n ranks differ from one process:"; diff <(figures one.json) <(figures "w$n.json"); exit 1; }
  # Only rank 0 speaks: one plan line.
  [[ $(grep -c '^plan:' "w$n.log") == 1 ]] || { echo "FAIL: $n ranks printed $(grep -c '^plan:' "w$n.log") plan lines"; exit 1; }
  passed=$((passed + 1))
done

# Kill rank 1 of a long run: rank 0 stops at once (not after the timeout),
# the launcher names rank 1, and exits non-zero.
long=(train --model cnn --noise-multiplier 1 --batch-size 64 --steps 120 --lr 0.5 --seed 5
      --checkpoint k.ckpt --checkpoint-every 10 --collective-timeout 60)
"$dptrain" launch --nproc 2 --master-port $((port + 4)) -- "${long[@]}" >kill.log 2>&1 &
launcher=$!
rank1=$(rank1_of "$launcher" '[[ -f k.ckpt.ledger ]] && (( $(wc -l <k.ckpt.ledger) > 20 ))')
[[ -n "$rank1" ]] || { echo "FAIL: rank 1 not found"; cat kill.log; exit 1; }
kill -9 "$rank1"
start=$SECONDS
status=0
wait "$launcher" || status=$?
(( status != 0 )) || { echo "FAIL: launcher exited 0 after a rank was killed"; exit 1; }
(( SECONDS - start < 30 )) || { echo "FAIL: the run took $((SECONDS - start)) s to stop"; exit 1; }
grep -q "rank 1 (pid $rank1) was killed by signal 9" kill.log || { echo "FAIL: launcher did not name rank 1:"; cat kill.log; exit 1; }
grep -q "error: rank 0 of 2: the all-reduce failed" kill.log || { echo "FAIL: rank 0 did not say why it stopped:"; cat kill.log; exit 1; }
passed=$((passed + 1))

# A rank that hangs (stopped): the others stop after --collective-timeout.
hang=(train --model cnn --noise-multiplier 1 --batch-size 64 --steps 2000 --lr 0.5 --seed 5
      --collective-timeout 5)
"$dptrain" launch --nproc 2 --master-port $((port + 1)) -- "${hang[@]}" >hang.log 2>&1 &
launcher=$!
rank1=$(rank1_of "$launcher" "grep -q '^plan:' hang.log")
[[ -n "$rank1" ]] || { echo "FAIL: rank 1 of the hang run not found"; cat hang.log; exit 1; }
sleep 1
kill -STOP "$rank1"
start=$SECONDS
status=0
wait "$launcher" || status=$?
(( status != 0 )) || { echo "FAIL: launcher exited 0 after a rank hung"; exit 1; }
(( SECONDS - start < 40 )) || { echo "FAIL: a hung rank held the run $((SECONDS - start)) s"; exit 1; }
grep -q "error: rank 0 of 2: the all-reduce failed .*timeout 5 s" hang.log ||
  { echo "FAIL: rank 0 did not report the timeout:"; cat hang.log; exit 1; }
passed=$((passed + 1))

# Relaunch with --resume: the run completes its 120 steps, and the ledger
# counts every step executed (the lost ones included).
"$dptrain" launch --nproc 2 --master-port $((port + 5)) -- "${long[@]}" --resume \
  --summary r.json >resume.log 2>&1 || { echo "FAIL: resume:"; cat resume.log; exit 1; }
grep -q "resumed from k.ckpt at step" resume.log || { echo "FAIL: no resume line"; cat resume.log; exit 1; }
grep -q '"steps":120,' r.json || { echo "FAIL: resumed run did not finish 120 steps"; cat r.json; exit 1; }
accounted=$(sed -e 's/.*"steps_accounted":\([0-9]*\).*/\1/' r.json)
(( accounted >= 120 )) || { echo "FAIL: steps_accounted $accounted < 120"; exit 1; }
passed=$((passed + 1))
echo "$passed passed, 0 failed"
