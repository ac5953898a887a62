#!/usr/bin/env bash
# The diffusion pipeline end to end through the CLI on Fashion-MNIST, at toy
# size: non-private pre-training on classes 0,1 (public), private fine-tuning
# on classes 5,6, sampling a synthetic set with the fine-tuning run's
# (epsilon, delta), then `dptrain train --dataset synth.h5` on it directly and
# `dptrain diffusion evaluate` on it (downstream accuracy, feature-cnn FID).
# Both training runs use v-prediction, which sampling reads from the summary.
# Usage: diffusion_pipeline_test.sh DPTRAIN_BINARY
set -euo pipefail
dptrain=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
common=(--batch-size 8 --steps 2 --noise-multiplicity 2 --model unet-small
  --diffusion-objective v)

"$dptrain" diffusion pretrain --classes 0,1 "${common[@]}" --seed 1 \
  --save-weights pre.h5 --summary pre.json >pre.log 2>&1 || { cat pre.log; fail "pretrain"; }
grep -q '"non_private":true' pre.json || fail "pretrain summary is not marked non-private"
grep -q 'no privacy (public pre-training)' pre.log || fail "pretrain log line"
grep -q '^pre-training: NON-PRIVATE' pre.log || fail "pretrain does not say it is non-private"

"$dptrain" diffusion finetune --classes 5,6 --init-checkpoint pre.h5 --noise-multiplier 1 \
  "${common[@]}" --seed 2 --save-weights ft.h5 --summary ft.json >ft.log 2>&1 ||
  { cat ft.log; fail "finetune"; }
grep -q '"task":"diffusion"' ft.json || fail "finetune summary"
grep -q '"post_processing"' ft.json || fail "finetune summary has no post-processing statement"
grep -q 'train loss .* (non-private), epsilon' ft.log || fail "finetune epoch line"

# sample and evaluate read part of their flags from --config files.
printf 'model = "unet-small"\nnum-samples = 8\ntest-samples = 4\nsteps = 2\nseed = 3\n' >sample.toml
"$dptrain" diffusion sample --config sample.toml --weights ft.h5 --out synth.h5 --grid grid.png \
  --privacy-summary ft.json >sample.log 2>&1 || { cat sample.log; fail "sample"; }
[[ -s grid.png && -s synth.h5 && -s synth.h5.json ]] || fail "sample outputs missing"
eps=$(grep -o '"epsilon":[0-9.e+-]*' ft.json | head -1)
grep -q "${eps/:/: }" synth.h5.json || fail "synth.h5.json does not carry $eps"
grep -q '"weights_verified": true' synth.h5.json || fail "the weights were not checked against ft.json"
grep -q '"steps": 2,' synth.h5.json || fail "sample did not take steps from sample.toml"
grep -q '"objective": "v"' synth.h5.json || fail "sampling did not take the v objective from ft.json"

"$dptrain" train --dataset synth.h5 --model cnn --recipe none --noise-multiplier 1 \
  --batch-size 4 --steps 2 --summary clf.json >clf.log 2>&1 || { cat clf.log; fail "train on synth.h5"; }
grep -q '"train_examples":8' clf.json || fail "train did not read the 8 synthetic images"
grep -q '"eval_examples":4' clf.json || fail "train did not evaluate on the synthetic test split"
printf 'real = "fashion-mnist"\nclasses = [5, 6]\nepochs = 3\nbatch-size = 4\n' >eval.toml
"$dptrain" diffusion evaluate --config eval.toml --synthetic synth.h5 --epochs 1 \
  --feature-dataset fashion-mnist --feature-classes 0,1 \
  --feature-epochs 1 --fid-samples 200 --save-feature-weights features.h5 \
  --json eval.json >eval.log 2>&1 || { cat eval.log; fail "evaluate"; }
grep -q '"downstream_accuracy":' eval.json || fail "evaluate: no downstream accuracy"
grep -q '"batch_size": 4,' eval.json || fail "evaluate did not take batch-size from eval.toml"
grep -q '"epochs": 1,' eval.json || fail "evaluate's --epochs flag did not override eval.toml"
grep -q '"real_test_examples": 2000,' eval.json || fail "evaluate did not take classes 5,6 from eval.toml"
grep -q '"fid_feature_cnn":' eval.json || fail "evaluate: no feature-cnn FID"
grep -q "${eps/:/: }" eval.json || fail "evaluate does not carry the synthetic set's $eps"
[[ -s features.h5 ]] || fail "evaluate did not save the feature weights"
echo "1 passed, 0 failed"
