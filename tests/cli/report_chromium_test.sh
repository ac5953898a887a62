#!/usr/bin/env bash
# `dptrain report`'s page in headless Chromium (Debian's `chromium`): it loads
# without console errors or failed requests, its DOM holds the charts, and a
# screenshot is taken (written to $REPORT_SHOT when set, to look at).
# Opt-in (ctest -L chromium): setup.sh does not install Chromium.
# Usage: report_chromium_test.sh DPTRAIN_BINARY [CHROMIUM]
set -euo pipefail
dptrain=$1
chromium=${2:-$(command -v chromium || command -v chromium-browser || true)}
if [[ -z $chromium ]]; then
  echo "SKIPPED: no chromium (apt-get install chromium)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
for i in 1 2 3 4 5; do
  echo "{\"step\":$((i * 10)),\"epoch\":$i,\"epsilon\":0.$((i + 2)),\"test_accuracy\":0.$((60 + i * 5)),\"ema_test_accuracy\":0.$((58 + i * 5)),\"test_loss\":1.$((9 - i)),\"train_loss_nonprivate\":1.$((8 - i))}"
done >run.jsonl
cat >run.json <<'JSON'
{"epsilon":0.7,"delta":1e-5,"accountant":"rdp","adjacency":"add_remove_one_example",
 "sampler":"poisson","seeded":false,"steps_accounted":50,
 "plan":{"privacy_unit":"one example","noise_multiplier":1.1,"max_grad_norm":1,"sample_rate":0.01},
 "per_class_accuracy":[0.8,0.9,0.7],"ema_per_class_accuracy":[0.82,0.88,0.71],
 "per_group_accuracy":[0.75,0.85],
 "publish":"Safe to publish: the weights and this summary's privacy figures.",
 "config":{"task":"classify","model":"cnn","dataset":"fashion-mnist"}}
JSON
"$dptrain" report run.jsonl --summary run.json --out report.html >report.log 2>&1 ||
  { cat report.log; fail "dptrain report"; }
page="file://$work/report.html"
"$chromium" --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 \
  --dump-dom "$page" >dom.html 2>dom.log || { cat dom.log; fail "chromium --dump-dom"; }
grep -q '<svg class="chart"' dom.html || fail "the DOM has no chart"
[[ $(grep -o '<svg class="chart"' dom.html | wc -l) -eq 6 ]] || fail "expected 6 charts in the DOM"
grep -q 'Privacy statement' dom.html || fail "the DOM has no privacy statement"
"$chromium" --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 \
  --hide-scrollbars --window-size=1280,1800 --screenshot="$work/shot.png" "$page" \
  >shot.log 2>&1 || { cat shot.log; fail "chromium --screenshot"; }
[[ -s shot.png ]] || fail "no screenshot"
[[ $(stat -c %s shot.png) -gt 20000 ]] || fail "the screenshot is nearly empty"
if grep -E 'CONSOLE|Uncaught|net::ERR|Failed to load' dom.log shot.log; then
  fail "the page logged errors or requests"
fi
[[ -n ${REPORT_SHOT:-} ]] && cp shot.png "$REPORT_SHOT"
echo "1 passed, 0 failed"
