#!/usr/bin/env bash
# Private synthetic data with a distribution shift, on Fashion-MNIST, end to
# end through the CLI (issue 15's experiment, sized for 2 CPU cores):
#
#   1. pre-train a class-conditional UNet NON-privately on classes 0-4 (the
#      "public" half: T-shirt, trouser, pullover, dress, coat);
#   2. fine-tune it with DP-SGD at (EPSILON, 1e-5) on classes 5-9 (the
#      "private" half: sandal, shirt, sneaker, bag, ankle boot), and the same
#      fine-tuning from scratch (no public pre-training);
#   3. sample a labelled synthetic set from each (post-processing);
#   4. train a CNN on each synthetic set only and test it on the real test
#      images of classes 5-9; FID on a feature-cnn trained on the public half;
#   5. for comparison, DP-SGD directly on the real classes 5-9 at the same
#      (EPSILON, 1e-5);
#   6. write the summary to $OUT/diffusion_fmnist.json and the sample grid of
#      the pre-trained run to $OUT/diffusion_fmnist_grid.png.
#
#   scripts/diffusion_demo.sh [EPSILON] [OUT_DIR]      e.g. scripts/diffusion_demo.sh 10 out/diffusion
# DPTRAIN points at the dptrain binary (default: build/cli/dptrain).
# Sizes (environment): MODEL (unet-small), K (noise multiplicity, 2),
# PRETRAIN_STEPS (300), PRETRAIN_BATCH (128), FINETUNE_STEPS (150),
# FINETUNE_BATCH (256), SAMPLES (5000 synthetic images), SAMPLER_STEPS (12
# Heun steps), CLASSIFIER_EPOCHS (10), REAL_EPOCHS (10, the DP-SGD baseline),
# THREADS (0 = all). The defaults are what benchmarks/RESULTS.md reports and
# why: see its "Private diffusion" section. A stage whose output is already in
# OUT_DIR is skipped (rerun after an interruption; delete OUT_DIR to start
# afresh).
set -euo pipefail

epsilon=${1:-10}
out=${2:-out/diffusion}
model=${MODEL:-unet-small}
k=${K:-2}
pretrain_steps=${PRETRAIN_STEPS:-300}
pretrain_batch=${PRETRAIN_BATCH:-128}
finetune_steps=${FINETUNE_STEPS:-150}
finetune_batch=${FINETUNE_BATCH:-256}
samples=${SAMPLES:-5000}
sampler_steps=${SAMPLER_STEPS:-12}
classifier_epochs=${CLASSIFIER_EPOCHS:-10}
real_epochs=${REAL_EPOCHS:-10}
threads=${THREADS:-0}
here=$(cd "$(dirname "$0")/.." && pwd)
dptrain=${DPTRAIN:-$here/build/cli/dptrain}
mkdir -p "$out"
run() { "$dptrain" --threads "$threads" "$@"; }
t0=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }

public=0,1,2,3,4
private=5,6,7,8,9
common=(--model "$model" --noise-multiplicity "$k" --optimizer adam --seed 1)

stamp "1. non-private pre-training on the public classes $public"
[[ -s $out/pretrained.json ]] || run diffusion pretrain --dataset fashion-mnist --classes "$public" "${common[@]}" \
  --lr 2e-3 --batch-size "$pretrain_batch" --steps "$pretrain_steps" \
  --save-weights "$out/pretrained.h5" --summary "$out/pretrained.json" > "$out/pretrain.log"
tail -n 2 "$out/pretrain.log"

for start in pretrained scratch; do
  stamp "2. private fine-tuning on classes $private at epsilon $epsilon ($start)"
  init=()
  [[ $start == pretrained ]] && init=(--init-checkpoint "$out/pretrained.h5")
  [[ -s $out/$start.ft.json ]] || run diffusion finetune --dataset fashion-mnist --classes "$private" "${common[@]}" \
    "${init[@]}" --target-epsilon "$epsilon" --delta 1e-5 --lr 1e-3 \
    --batch-size "$finetune_batch" --max-physical-batch-size 128 --steps "$finetune_steps" \
    --max-grad-norm 1 --save-weights "$out/$start.ft.h5" \
    --summary "$out/$start.ft.json" > "$out/$start.ft.log"
  tail -n 2 "$out/$start.ft.log"

  stamp "3. sampling $samples images ($start)"
  grid=()
  [[ $start == pretrained ]] && grid=(--grid "$out/diffusion_fmnist_grid.png")
  [[ -s $out/$start.synth.h5.json ]] || run diffusion sample --weights "$out/$start.ft.h5" --model "$model" --num-classes 5 \
    --num-samples "$samples" --steps "$sampler_steps" --seed 2 --out "$out/$start.synth.h5" \
    "${grid[@]}" --privacy-summary "$out/$start.ft.json" > "$out/$start.sample.log"

  stamp "4. downstream CNN and FID ($start)"
  # The feature-cnn is trained once, on the public classes, and reused.
  features=(--feature-dataset fashion-mnist --feature-classes "$public" --feature-epochs 2
            --save-feature-weights "$out/features.h5")
  [[ -s $out/features.h5 ]] && features=(--feature-weights "$out/features.h5")
  [[ -s $out/$start.eval.json ]] || run diffusion evaluate --synthetic "$out/$start.synth.h5" --real fashion-mnist \
    --classes "$private" --epochs "$classifier_epochs" "${features[@]}" \
    --json "$out/$start.eval.json" > "$out/$start.eval.log"
done

stamp "5. DP-SGD directly on the real classes $private at epsilon $epsilon"
[[ -s $out/real.json ]] || run train --dataset fashion-mnist --classes "$private" --model cnn --recipe none \
  --target-epsilon "$epsilon" --delta 1e-5 --batch-size 1024 --epochs "$real_epochs" \
  --optimizer sgd --lr 4 --momentum 0.9 --max-grad-norm 0.1 --seed 1 \
  --summary "$out/real.json" > "$out/real.log"
tail -n 1 "$out/real.log" | cut -c1-200 || true

stamp "6. summary"
python3 - "$out" "$epsilon" "$(( $(date +%s) - t0 ))" "$(lscpu | sed -n 's/^Model name: *//p')" <<'PY'
import json, sys
out, epsilon, seconds, cpu = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
load = lambda name: json.load(open(f"{out}/{name}"))
pre, scratch = load("pretrained.eval.json"), load("scratch.eval.json")
ft, ft_scratch, real = load("pretrained.ft.json"), load("scratch.ft.json"), load("real.json")
summary = {
    "experiment": "Fashion-MNIST shift: public classes 0-4 (non-private pre-training), "
                  "private classes 5-9 (DP fine-tuning), synthetic-only CNN tested on "
                  "the real test images of 5-9",
    "epsilon": ft["epsilon"], "delta": ft["delta"],
    "epsilon_from_scratch": ft_scratch["epsilon"],
    "downstream_accuracy": pre["downstream_accuracy"],
    "downstream_per_class_accuracy": pre["per_class_accuracy"],
    "downstream_accuracy_from_scratch": scratch["downstream_accuracy"],
    "dpsgd_real_accuracy": real["test_accuracy"],
    "dpsgd_real_epsilon": real["epsilon"],
    "fid": pre["fid"], "fid_from_scratch": scratch["fid"],
    "fid_network": pre.get("fid_network"),
    "fid_note": pre.get("feature_cnn", {}).get("note", pre.get("fid_note")),
    "fid_inception": pre.get("fid_inception"),
    "fid_inception_note": None if "fid_inception" in pre else
        "not measured: pytorch-fid's InceptionV3 weights cannot be downloaded here",
    "finetune_steps": ft["steps"], "noise_multiplier": ft["noise_multiplier"],
    "sample_rate": ft["sample_rate"],
    "synthetic_examples": pre["synthetic_examples"],
    "wall_seconds": seconds, "cpu": cpu,
}
json.dump(summary, open(f"{out}/diffusion_fmnist.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
