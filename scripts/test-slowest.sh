#!/usr/bin/env bash
# Mocha with the slowest tests, hooks and files listed at the end (POLYGLOT_SLOWEST: how many, default 15).
# Arguments: compiled test files or globs (default: every test, as scripts/test.sh runs them, servers
# included: set up first with scripts/setup.sh and scripts/setup-ml.sh). Builds first; lints nothing.
#   npm run test:slowest -- "lib/test/integration/sweep.test.js"
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
npx tsc -p tsconfig.json
[ $# -gt 0 ] || set -- "lib/test/**/*.test.js"
exec npx mocha --exit --require lib/test/support/hooks.js --reporter lib/test/support/slowest-reporter.js "$@"
