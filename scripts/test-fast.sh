#!/usr/bin/env bash
# The fast tier: build, lint and the tests that need no server (test/unit), in about a minute on 2 cores.
# It installs nothing and starts no server (no Temporal, S3 or LLM): run scripts/setup.sh once first.
# `npm test` (scripts/test.sh) stays the full suite and CI's command.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
start=$(date +%s)
# ESLint (type-aware, the slowest step) runs beside the build on the second core. Both linters keep a cache
# under lib/ (ignored), so a rerun checks only changed files; `npm test` lints everything uncached.
eslint_log=$(mktemp)
eslint_pid=
# A failed build or format check must not leave the background ESLint running.
trap '[ -z "$eslint_pid" ] || kill "$eslint_pid" 2>/dev/null || true; rm -f "$eslint_log"' EXIT
echo "[test:fast] lint: eslint (in the background)"
npx eslint --max-warnings 0 --cache --cache-location lib/.eslintcache . >"$eslint_log" 2>&1 &
eslint_pid=$!
echo "[test:fast] build (lib/ is what mocha runs)"
npx tsc -p tsconfig.json
echo "[test:fast] lint: prettier"
npx prettier --check --cache --cache-location lib/.prettiercache "src/**/*.ts" "test/**/*.ts" "bench/**/*.ts" >/dev/null
if ! wait "$eslint_pid"; then
  eslint_pid=
  cat "$eslint_log"
  echo "[test:fast] eslint failed"
  exit 1
fi
eslint_pid=
echo "[test:fast] unit tests (no root hooks: no servers)"
ignore=()
# Unit tests whose reference computation runs in the jobs' Python (numpy, pandas at the jobs' pins) need
# scripts/setup-ml.sh; without it they are named here and left to `npm test`, which installs it.
if [ ! -f .tools/ml-venv/.stamp ]; then
  for f in $(grep -l 'runMlPython\|ML_PYTHON\|transformersPerplexity' test/unit/*.ts); do
    echo "[test:fast] skipped (needs scripts/setup-ml.sh): $f"
    ignore+=(--ignore "lib/${f%.ts}.js")
  done
fi
POLYGLOT_SLOWEST=${POLYGLOT_SLOWEST:-5} npx mocha --exit --reporter lib/test/support/slowest-reporter.js \
  ${ignore[@]+"${ignore[@]}"} "lib/test/unit/**/*.test.js"
echo "[test:fast] passed in $(( $(date +%s) - start )) s"
