#!/usr/bin/env bash
# The one command for the GPU machine: train + evaluate the student with the jobs' own code and print
# the figures (bench/gpu-student.py). Run from the repo root, with the wheels in .whl carried along:
#   bash bench/gpu-student.sh [gpu-student.py options, e.g. --steps 120]
# That machine has python3 3.12 with torch 2.11+cu130, transformers 5.17, accelerate, peft, pandas,
# pyarrow, huggingface-hub, ... but no trl, lm-eval, datasets, and no network: what the trainer and the
# evaluator need beyond that travels as wheels in .whl/ (ignored by git; ~29 MB, so the tree stays well
# under the 64 MiB a device call carries). Prepare them here, once:
#   bash bench/gpu-student.sh --prepare-wheels
# which downloads the versions of jobs/requirements.lock (cp312, manylinux x86_64 or pure; no torch, no
# nvidia-*). Pure-Python sdists (rouge-score, sqlitedict, word2number) are built into wheels. The set is
# lm-eval's and datasets' Requires-Dist closure less what the device image already holds, checked by hand
# against the METADATA of each wheel. transformers==5.23.0 (the lock's) and peft==0.21.2 are carried too,
# so the Python stack matches the images except torch; transformers is tried first and, if the stack does
# not import with it, the device's own is used instead (force that with GPU_STUDENT_DEVICE_TRANSFORMERS=1).
# No model weights travel: the model defaults to random:.whl/smollm2-135m-config (SmolLM2-135M's
# architecture and tokenizer, random weights) when .tools/models/smollm2-135m-instruct is absent.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=python3
export PIP_ROOT_USER_ACTION=ignore

WHEELS=(trl==1.16.0 lm_eval==0.4.13 datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19
  fsspec==2026.9.0 pytablewriter==1.2.1 DataProperty==1.1.1 mbstrdecoder==1.1.5 pathvalidate==3.3.1
  tabledata==1.3.5 tcolorpy==0.1.7 typepy==1.3.5 chardet==6.0.0.post1 pytz==2026.6 nltk==3.10.4
  defusedxml==0.7.1 more-itertools==11.2.1 typing_extensions==4.16.0 peft==0.21.2 transformers==5.23.0
  regex==2026.11.19)
SDISTS=(rouge_score==0.1.2 sqlitedict==2.1.0 word2number==1.1)
if [ "${1:-}" = --prepare-wheels ]; then
  set -e
  mkdir -p .whl
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "${WHEELS[@]}"
  $PY -m pip wheel -q --no-deps -w .whl "${SDISTS[@]}"
  # The student's architecture and tokenizer without its weights (3.5 MB, from scripts/setup-ml.sh's
  # conversion): the GPU machine trains it from random weights, as no weights may travel or be fetched.
  mkdir -p .whl/smollm2-135m-config
  for f in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja; do
    cp ".tools/models/smollm2-135m-instruct/$f" .whl/smollm2-135m-config/
  done
  ls -l .whl && du -sh .whl
  exit 0
fi

OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
ls .whl/*.whl >/dev/null 2>&1 || { echo "[gpu-student.sh] no wheels in .whl/: carry .whl (see this file's header)" >&2; exit 2; }

echo "[gpu-student.sh] device packages before install:"
$PY - <<'EOF'
import importlib.metadata as md, sys
print("  python", sys.version.split()[0])
for n in ("torch", "transformers", "tokenizers", "huggingface-hub", "accelerate", "peft", "pyarrow", "fsspec",
          "pandas", "numpy", "xxhash", "typing-extensions", "trl", "lm-eval", "datasets"):
    try:
        print(f"  {n} {md.version(n)}")
    except md.PackageNotFoundError:
        print(f"  {n} (absent)")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "  (nvidia-smi: none)"

# Everything but transformers into /tmp/site; transformers alone into /tmp/site-tf, so it can be dropped.
rm -rf /tmp/site /tmp/site-tf
others=$(ls .whl/*.whl | grep -v '/transformers-')
tf=$(ls .whl/transformers-*.whl 2>/dev/null || true)
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $others || exit 1
if [ -n "$tf" ] && [ "${GPU_STUDENT_DEVICE_TRANSFORMERS:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-tf $tf || exit 1
fi

export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
  PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1 \
  HF_HOME=/tmp/hf-home POLYGLOT_MODEL_CACHE=/tmp/polyglot-models

preflight() {
  $PY - <<'EOF'
import importlib.metadata as md
import polyglot_jobs.trainer, polyglot_jobs.evaluator  # noqa: F401
from trl import SFTConfig, SFTTrainer  # noqa: F401
from lm_eval.models.huggingface import HFLM  # noqa: F401
import datasets, peft, transformers, trl, lm_eval, torch  # noqa: F401
print("[gpu-student.sh] imports ok: " + ", ".join(f"{n} {md.version(n)}" for n in
      ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "lm-eval", "huggingface-hub")))
EOF
}
export PYTHONPATH="/tmp/site-tf:/tmp/site:$PWD/jobs${PYTHONPATH:+:$PYTHONPATH}"
if ! preflight; then
  [ -d /tmp/site-tf ] || exit 1
  echo "[gpu-student.sh] the stack does not import with the carried transformers; retrying with the device's" >&2
  rm -rf /tmp/site-tf
  preflight || exit 1
fi

$PY bench/gpu-student.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu-student.log"
