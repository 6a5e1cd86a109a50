#!/usr/bin/env bash
# The README's second command (and CI's): install what is missing, lint, then run every test
# against real servers that the test run starts itself (Temporal dev server, moto S3, local LLM).
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
bash scripts/setup.sh
# The Python jobs' venv (torch, TRL, lm-eval) and the small student model: the jobs' tests and the
# student-stage integration tests need them.
bash scripts/setup-ml.sh
# Headless Chromium (Debian) for the report rendering test; idempotent, never fails the run.
bash scripts/install-chromium.sh
# The Kubernetes control-plane binaries for test/integration/jobs-kubernetes (cold ~20 min, then < 1 s).
nice scripts/kube-build.sh
# Every process the test runners start inherits this marker; the mocha run checks for leftovers itself and
# the sweep at the end catches what pytest or a crashed mocha left behind. It is given to the runners
# alone, not exported: `tee` beside mocha in the pipe must not carry it (the leftover scan would kill it).
run_id=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || date +%s%N)
sweep_leftovers() {
  local f pid n=0
  for f in /proc/[0-9]*/environ; do
    pid=${f#/proc/}; pid=${pid%/environ}
    [ "$pid" = "$$" ] && continue
    if grep -qzxF "POLYGLOT_TEST_RUN=$run_id" "$f" 2>/dev/null; then
      echo "[test] left running by this run, killed: pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)"
      kill -9 "$pid" 2>/dev/null || true
      n=$((n + 1))
    fi
  done
  return "$n"
}
echo "[test] lint"
npx eslint --max-warnings 0 .
npx prettier --check "src/**/*.ts" "test/**/*.ts" "bench/**/*.ts" >/dev/null
echo "[test] python jobs (pytest)"
set +e
POLYGLOT_TEST_RUN=$run_id bash scripts/test-py.sh
py_rc=$?
set -e
echo "[test] mocha"
log=$(mktemp)
set +e
# The spec reporter plus, at the end, the slowest tests, hooks and files (where the suite's minutes go).
POLYGLOT_TEST_RUN=$run_id npx mocha --exit --require lib/test/support/hooks.js \
  --reporter lib/test/support/slowest-reporter.js "lib/test/**/*.test.js" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^ *[0-9]+ passing' "$log" | grep -Eo '[0-9]+' || echo 0)
failed=$(grep -Eo '^ *[0-9]+ failing' "$log" | grep -Eo '[0-9]+' || echo 0)
rm -f "$log"
echo "mocha: ${passed} passed, ${failed} failed"
set +e
sweep_leftovers
left=$?
set -e
[ "$left" = 0 ] || { echo "[test] ${left} process(es) outlived the tests"; [ "$rc" != 0 ] || rc=1; }
[ "$py_rc" = 0 ] || echo "pytest (jobs/) failed: exit $py_rc"
[ "$rc" = 0 ] && exit "$py_rc"
exit "$rc"
