# Polyglot trainer image: the in-pod student trainer `polyglot-train` (jobs/polyglot_jobs/trainer.py, TRL SFT,
# LoRA / QLoRA / full). Build from the repo root: docker build -f deploy/images/trainer.Dockerfile .
# evaluator.Dockerfile is the same recipe with another entry point: the two share every layer up to the chat
# templates, which only the trainer needs.
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
# ca-certificates: HTTPS to S3 and (for HF-id students) the Hugging Face hub.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM base AS build
RUN python3 -m venv /opt/venv
# Dependencies first, from the lock and pyproject alone, so a code change does not reinstall torch. The `gpu`
# extra (bitsandbytes: QLoRA's 4-bit base and the paper's adamw_8bit) is read from pyproject.toml, its one
# source. pip freeze leaves setuptools out of the lock; pip resolves it for torch. rouge-score, sqlitedict and
# word2number (lm-eval's) exist only as pure-Python sdists and are built here.
COPY jobs/requirements.lock jobs/pyproject.toml /src/jobs/
RUN gpu="$(python3 -c "import tomllib; print(' '.join(tomllib.load(open('/src/jobs/pyproject.toml', 'rb'))['project']['optional-dependencies']['gpu']))")" \
 && /opt/venv/bin/pip install -r /src/jobs/requirements.lock $gpu
# The package itself (not its tests or fixtures), without deps: everything it needs is pinned above.
COPY jobs/polyglot_jobs /src/jobs/polyglot_jobs
RUN /opt/venv/bin/pip install --no-deps /src/jobs && /opt/venv/bin/pip check

# The chat templates the paper's trainer applied (unsloth's llama-3.1, gemma-3, chatml), rendered from the package
# pinned in tools/protocol-requirements.txt, the same step scripts/setup.sh runs locally. The packages are
# installed without dependencies (only their files are read) and stay in this stage; the image gets the texts.
FROM base AS protocols
COPY tools/protocol-requirements.txt /src/tools/protocol-requirements.txt
COPY tools/protocols /src/tools/protocols
RUN python3 -m venv /opt/protocol-venv \
 && /opt/protocol-venv/bin/pip install --no-deps -r /src/tools/protocol-requirements.txt \
 && /opt/protocol-venv/bin/python /src/tools/protocols/render.py /opt/polyglot/generated

FROM base
COPY --from=build /opt/venv /opt/venv
# POLYGLOT_PROTOCOLS_DIR: where jobs/polyglot_jobs/chat_templates.py reads the rendered templates.
COPY --from=protocols /opt/polyglot/generated /opt/polyglot/generated
ENV POLYGLOT_PROTOCOLS_DIR=/opt/polyglot/generated
# Caches under /cache, one place to mount a volume (emptyDir or a node-local disk) so hub downloads and S3 model
# copies survive retries of a pod on that node: HF_HOME for students given as HF ids (datasets' cache is under
# it), POLYGLOT_MODEL_CACHE for s3:// model folders (jobs/polyglot_jobs/models.py). Without a mount they land in
# the container's writable layer, which works too. Checkpoints and merged weights go to a temp dir (/tmp) before
# upload: give the pod ephemeral storage for about twice the student's 16-bit size.
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
# the exit code says retryable (1) or not (2, 3). A Job spec's `command` may name polyglot-train again.
ENTRYPOINT ["/opt/venv/bin/polyglot-train"]
