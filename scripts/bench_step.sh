#!/usr/bin/env bash
# Cost of privacy for one model and batch size: time (both steps in one
# process, interleaved) and peak memory (each variant in its own process).
#
#   scripts/bench_step.sh MODEL BATCH [STEPS] [THREADS]
#   e.g. scripts/bench_step.sh wrn-16-4 32
#
# DPTRAIN points at the dptrain binary (default: build/cli/dptrain).
# Prints the three JSON results, then one summary line with the time ratio,
# the peak-memory ratio (whole process) and the ratio of the memory the step
# itself adds (peak minus the resident size after set-up).
set -euo pipefail

model=${1:?usage: bench_step.sh MODEL BATCH [STEPS] [THREADS]}
batch=${2:?usage: bench_step.sh MODEL BATCH [STEPS] [THREADS]}
steps=${3:-10}
threads=${4:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
dptrain=${DPTRAIN:-$here/build/cli/dptrain}

run() {
  "$dptrain" --threads "$threads" bench step --model "$model" \
    --batch-size "$batch" --json "$@"
}

timing=$(run --steps "$steps")
# Memory: fewer steps suffice (the peak is reached in the first step).
nonprivate=$(run --only nonprivate --steps 2 --warmup 1)
dp=$(run --only dp --steps 2 --warmup 1)
echo "$timing"
echo "$nonprivate"
echo "$dp"

python3 - "$timing" "$nonprivate" "$dp" <<'EOF'
import json, sys
t, n, d = (json.loads(a) for a in sys.argv[1:4])
peak = d["peak_rss_mb"] / n["peak_rss_mb"]
step_n = n["peak_rss_mb"] - n["baseline_rss_mb"]
step_d = d["peak_rss_mb"] - d["baseline_rss_mb"]
print(f'{t["model"]} B={t["batch_size"]} threads={t["threads"]}: '
      f'non-private {t["nonprivate_ms"]:.1f} ms, DP {t["dp_ms"]:.1f} ms, '
      f'ratio {t["ratio"]:.2f}; peak memory {n["peak_rss_mb"]:.0f} vs '
      f'{d["peak_rss_mb"]:.0f} MB (ratio {peak:.2f}); memory added by the step '
      f'{step_n:.0f} vs {step_d:.0f} MB '
      f'(ratio {step_d / step_n if step_n > 0 else float("nan"):.2f})')
EOF
