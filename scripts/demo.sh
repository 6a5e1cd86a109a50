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
# Prints the teacher × language grid and the leaderboard as aligned tables (links stay in the report files).
bin/polyglot sweep start examples/demo.yaml --wait
echo
# Where this sweep's latest version keeps its report and summary: keys from src/storage/layout.ts, the one
# place that builds them (versioned runs live under runs/<version>/).
root=.data/s3/polyglot-demo
read -r report summary < <(node -e '
const { keys } = require("./lib/src/storage/layout");
const { version } = require("./.data/s3/polyglot-demo/polyglot/sweeps/demo/latest.json");
console.log(keys.sweepReport("polyglot", "demo", version), keys.sweepSummary("polyglot", "demo", version));')
# The students (trained and evaluated as local jobs) and anchors, from the summary and each job's result.json.
SUMMARY="$root/$summary" node -e '
const { formatTable } = require("./lib/src/report/terminal");
const s = require(require("path").resolve(process.env.SUMMARY));
const f = (x) => (x === undefined ? undefined : x.toFixed(3));
const students = (s.students ?? []).map((st) => {
  const m = require("./.data/s3/" + st.resultUri.slice(5)).metrics;  // the training job result.json
  return [st.student, st.teacher, st.language, f(st.score), f(m.loss_before), f(m.loss_after)];
});
const right = (h) => ({ header: h, align: "right" });
console.log("Students (trained and evaluated as local jobs):");
for (const l of formatTable([{ header: "student" }, { header: "teacher" }, { header: "lang" }, right("S"), right("loss before"), right("loss after")], students)) console.log("  " + l);
const anchors = (s.anchors ?? []).map((a) => [a.family, a.language, f(a.base.score), f(a.reference.score)]);
console.log("Anchors:");
for (const l of formatTable([{ header: "family" }, { header: "lang" }, right("base B"), right("reference R")], anchors)) console.log("  " + l);'
echo
# The last lines: where everything is, each named once.
ui_port=$(sed -n 's/^POLYGLOT_UI_PORT=//p' .data/dev.env)
datasets=$(SUMMARY="$root/$summary" node -e '
const path = require("path");
const s = require(path.resolve(process.env.SUMMARY));
// The folder all of this sweep’s datasets share (older runs with other keys may sit beside them).
const dirs = s.results.map((r) => path.dirname(".data/s3/" + r.manifestUri.slice(5)).split("/"));
let common = dirs[0] ?? [];
for (const d of dirs) {
  let i = 0;
  while (i < common.length && common[i] === d[i]) i++;
  common = common.slice(0, i);
}
console.log(`${s.results.length} datasets under ${path.resolve(common.join("/"))}/`);')
echo "Where to look:"
echo "  report    $PWD/$root/$report/report.html  (leaderboard.md, *.csv, scores.json beside it)"
echo "  data      ${datasets}  (each: manifest.json, shards/*.jsonl)"
echo "  Web UI    http://127.0.0.1:${ui_port}/namespaces/default/workflows?query=SweepId%3D%22demo%22"
echo "Demo took $(( $(date +%s) - start )) s. The stack keeps running for the Web UI; stop it with: bin/polyglot dev down"
