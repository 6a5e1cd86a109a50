#!/usr/bin/env bash
# The Python jobs' own tests (trainer, evaluator) on CPU, offline. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-ml.sh
cd jobs
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 exec ../.tools/ml-venv/bin/python -m pytest -q -p no:cacheprovider "$@"
