#!/usr/bin/env bash
# Private byte-level language modelling on real public-domain text: the King
# James Bible (Debian packages bible-kjv-text + bible-kjv, public domain).
#
#   scripts/lm_demo.sh [MODEL] [EPSILON] [STEPS] [OUT_DIR]
#   e.g. scripts/lm_demo.sh hawk-tiny 8 350 out/lm
#
# 1. installs the packages with apt-get if the `bible` program is missing;
# 2. extracts the whole text (Genesis 1:1 … Revelation 22:21) with `bible`,
#    drops the chapter headings and verse numbers and joins the wrapped lines
#    into one plain-text file ($OUT_DIR/kjv.txt, about 4.3 MB);
# 3. trains MODEL privately at (EPSILON, 1e-5)-DP on 128-byte sequences (one
#    sequence = one privacy unit), the last 2% of the text (about 640
#    sequences, mostly Revelation) held out;
# 4. generates a continuation from the weights file (the release artefact).
# DPTRAIN points at the dptrain binary (default: build/cli/dptrain).
# Environment: BATCH (default 64), LR (default 0.005, Adam), THREADS (0 = all).
set -euo pipefail

model=${1:-hawk-tiny}
epsilon=${2:-8}
steps=${3:-350}
out=${4:-out/lm}
batch=${BATCH:-64}
lr=${LR:-0.005}
threads=${THREADS:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
dptrain=${DPTRAIN:-$here/build/cli/dptrain}
mkdir -p "$out"

if ! command -v bible >/dev/null 2>&1 || [ ! -e /usr/lib/bible.data ]; then
  echo "installing bible-kjv-text and bible-kjv (apt-get)" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -q
  $sudo apt-get install -y --no-install-recommends bible-kjv-text bible-kjv
fi

text=$out/kjv.txt
if [ ! -s "$text" ]; then
  # `bible` prints "Genesis 1" headings and "  N verse text" lines wrapped at
  # the terminal width; keep only the verse text, one verse per line.
  COLUMNS=100000 bible "gen1:1-rev22:21" |
    awk '/^  *[0-9]+ / { sub(/^ *[0-9]+ /, ""); if (v != "") print v; v = $0; next }
         /^[A-Z1-9][A-Za-z ]* [0-9]+$/ { next }
         NF { v = v " " $0 }
         END { if (v != "") print v }' > "$text"
fi
echo "text: $text ($(wc -c < "$text") bytes, $(wc -l < "$text") verses)"

ckpt=$out/$model.ckpt
# A fresh demo run: replace the previous one's checkpoint and privacy record.
rm -f "$ckpt" "$ckpt.ledger"
start=$(date +%s)
"$dptrain" --threads "$threads" train --task lm --model "$model" --dataset "text:$text" \
  --sequence-length 128 --validation-fraction 0.02 --target-epsilon "$epsilon" --delta 1e-5 --steps "$steps" \
  --batch-size "$batch" --max-physical-batch-size 64 --optimizer adam --lr "$lr" \
  --max-grad-norm 1 --ema-decay 0.99 --checkpoint "$ckpt" --checkpoint-every 100 \
  --save-weights "$out/$model.pt" --metrics "$out/$model.jsonl" --summary "$out/$model.summary.json" --seed 1
echo "wall: $(( $(date +%s) - start )) s"
"$dptrain" generate --weights "$out/$model.pt" --prompt "And God said, " --num-tokens 200 \
  --temperature 0.7 --seed 1
