#!/usr/bin/env bash
# The README's first command: install what is missing, bring up the local stack, run the demo sweep.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
start=$(date +%s)
bash scripts/setup.sh
# The trainer/evaluator jobs' Python (torch, TRL, lm-eval: ~4 GB from PyPI the first time) and the student.
bash scripts/setup-ml.sh
bin/polyglot dev up
echo
bin/polyglot sweep plan examples/demo.yaml
echo
bin/polyglot sweep start examples/demo.yaml --wait
echo
# The stack's own record, not this shell: `dev up` keeps a running stack on its recorded ports.
ui_port=$(sed -n 's/^POLYGLOT_UI_PORT=//p' .data/dev.env)
echo "Web UI (this sweep):  http://127.0.0.1:${ui_port}/namespaces/default/workflows?query=SweepId%3D%22demo%22"
# Where this sweep's latest version keeps its report and summary: keys from src/storage/layout.ts, the one
# place that builds them (versioned runs live under runs/<version>/).
root=.data/s3/polyglot-demo
read -r report summary < <(node -e '
const { keys } = require("./lib/src/storage/layout");
const { version } = require("./.data/s3/polyglot-demo/polyglot/sweeps/demo/latest.json");
console.log(keys.sweepReport("polyglot", "demo", version), keys.sweepSummary("polyglot", "demo", version));')
echo "Leaderboard ($root/$report/leaderboard.md):"
sed -n '1,40p' "$root/$report/leaderboard.md" | sed 's/^/  /'
echo
echo "HTML report: $PWD/$root/$report/report.html"
echo "Dataset files (S3 bucket polyglot-demo, served from disk):"
# The datasets of this sweep, from its summary (older runs with other keys may sit beside them).
SUMMARY="$root/$summary" node -e 'const s=require(require("path").resolve(process.env.SUMMARY));
for (const r of s.results) console.log("  .data/s3/" + r.manifestUri.slice(5).replace(/\/manifest.json$/, ""));'
echo "  each holds manifest.json (counts, tokens, cost) and shards/*.jsonl (the SFT rows)"
echo "Students (trained and evaluated as local jobs) and anchors:"
SUMMARY="$root/$summary" node -e 'const s=require(require("path").resolve(process.env.SUMMARY));
const f=(x)=>x===undefined?"-":x.toFixed(3);
for (const st of s.students ?? []) {
  const m = require("./.data/s3/" + st.resultUri.slice(5)).metrics;  // the training job result.json
  console.log(`  ${st.student} on ${st.teacher}/${st.language}: S=${f(st.score)}  loss ${f(m.loss_before)} -> ${f(m.loss_after)}`);
}
for (const a of s.anchors ?? []) console.log(`  anchors ${a.family}/${a.language}: base B=${f(a.base.score)}  reference R=${f(a.reference.score)}`);'
echo "Demo took $(( $(date +%s) - start )) s. The stack keeps running for the Web UI; stop it with: bin/polyglot dev down"
