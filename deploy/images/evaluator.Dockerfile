# Polyglot evaluator image: the in-pod evaluator `polyglot-eval` (jobs/polyglot_jobs/evaluator.py; default
# suite lighteval-v1 on lighteval, suite pg-v1 on lm-evaluation-harness). Build from the repo root: docker build -f deploy/images/evaluator.Dockerfile .
# The same recipe as trainer.Dockerfile, line for line except the entry point, so a build after the trainer's
# reuses every layer but the last, and both images score and train with the very same libraries.
#
# CUDA: torch==2.15.0 in jobs/requirements.lock is PyPI's CUDA 13 build, and the lock pins its CUDA 13.2
# user-space libraries as wheels (cuda-toolkit 13.2.2, nvidia-cublas, nvidia-cudnn-cu13, nvidia-nccl-cu13, ...).
# So the base image needs no CUDA libraries of its own: the `-base` flavour (cudart, the compat package and the
# NVIDIA container-runtime labels) is enough; `-runtime`/`-cudnn` would ship a second, unused copy (~3 GB).
# The node's driver must support CUDA 13: NVIDIA driver >= 580 (the GPU Operator / container toolkit mounts it).
# The base is pinned by exact tag (13.2 = the lock's CUDA); Ubuntu 24.04's python3 is 3.12 (the package needs
# >= 3.11; every pin of the lock has a cp312 manylinux x86_64 wheel, or is a pure-Python sdist).
FROM nvidia/cuda:13.2.0-base-ubuntu24.04 AS base
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# python3-venv: Ubuntu's system Python is "externally managed" (PEP 668), so everything goes into /opt/venv.
# ca-certificates: HTTPS to S3 and (for HF-id models) the Hugging Face hub.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM base AS build
RUN python3 -m venv /opt/venv
# Dependencies first, from the lock and pyproject alone, so a code change does not reinstall torch. The `gpu`
# extra (bitsandbytes) is read from pyproject.toml, its one source; the evaluator needs it too, to load models
# that were saved bnb-quantized. pip freeze leaves setuptools out of the lock; pip resolves it for torch.
# rouge-score, sqlitedict and word2number (lm-eval's) exist only as pure-Python sdists and are built here.
COPY jobs/requirements.lock jobs/requirements-lighteval.txt jobs/pyproject.toml /src/jobs/
RUN gpu="$(python3 -c "import tomllib; print(' '.join(tomllib.load(open('/src/jobs/pyproject.toml', 'rb'))['project']['optional-dependencies']['gpu']))")" \
 && /opt/venv/bin/pip install -r /src/jobs/requirements.lock $gpu
# lighteval (the default suite's harness) on top, --no-deps: it does not resolve together with the lock
# (jobs/requirements-lighteval.txt says why and pins the rest of its dependencies).
RUN /opt/venv/bin/pip install --no-deps -r /src/jobs/requirements-lighteval.txt
# The package itself (not its tests or fixtures), without deps: everything it needs is pinned above.
COPY jobs/polyglot_jobs /src/jobs/polyglot_jobs
# pip check, except the requirements of lighteval and inspect-ai that the lock overrides
# or leaves out on purpose (nltk, fsspec; aiobotocore, s3fs, openai; see jobs/requirements-lighteval.txt):
# any other conflict fails the build.
RUN /opt/venv/bin/pip install --no-deps /src/jobs \
 && { /opt/venv/bin/pip check || true; } \
    | grep -v -E '^(lighteval 0\.13\.0 (has requirement nltk==3\.9\.1|requires openai)|inspect-ai 0\.3\.285 (has requirement fsspec|requires (aiobotocore|s3fs)))' \
    | grep -v '^No broken requirements' | { ! grep .; }

FROM base
COPY --from=build /opt/venv /opt/venv
# Caches under /cache, one place to mount a volume (emptyDir or a node-local disk) so hub downloads and S3 model
# copies survive retries of a pod on that node: HF_HOME for models given as HF ids (datasets' cache is under
# it), POLYGLOT_MODEL_CACHE for s3:// model folders (jobs/polyglot_jobs/models.py). Without a mount they land in
# the container's writable layer, which works too. Benchmark data is read from the data URI, never a hub.
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv \
    HF_HOME=/cache/huggingface POLYGLOT_MODEL_CACHE=/cache/polyglot/models XDG_CACHE_HOME=/cache \
    TOKENIZERS_PARALLELISM=false
# Non-root, numeric so that a pod's `runAsNonRoot: true` can verify it; /cache is its own.
RUN groupadd --gid 10001 polyglot \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin polyglot \
 && mkdir -p /cache && chown 10001:10001 /cache
USER 10001:10001
WORKDIR /home/polyglot
# The job contract (POLYGLOT_OUTPUT_URI, POLYGLOT_INPUTS, POLYGLOT_JOB_CONFIG, ...) comes in the environment;
# the exit code says retryable (1) or not (2, 3). A Job spec's `command` may name polyglot-eval again.
ENTRYPOINT ["/opt/venv/bin/polyglot-eval"]
