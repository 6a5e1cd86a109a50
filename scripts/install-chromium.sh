#!/usr/bin/env bash
# Installs Debian's chromium for the headless report test (test/integration/report-browser.test.ts).
# Idempotent; never fails the caller: prints why it did nothing when it cannot install.
set -u
if command -v chromium >/dev/null 2>&1; then
  echo "[chromium] already installed: $(command -v chromium)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[chromium] apt-get not available; skipping (the browser test will be skipped)"
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "[chromium] not root; skipping (run as root to install, the browser test will be skipped)"
  exit 0
fi
if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium); then
  echo "[chromium] installed: $(command -v chromium)"
else
  echo "[chromium] apt-get install failed; skipping (the browser test will be skipped)"
fi
exit 0
