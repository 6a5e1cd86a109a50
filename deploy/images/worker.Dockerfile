# Polyglot worker image: workflows + activities + job watchers. Debian-based (the Temporal core bridge
# ships glibc builds only). Build from the repo root: docker build -f deploy/images/worker.Dockerfile .
# Protocol texts the worker reads at run time (the rubric judge's prompt), rendered from the pinned reference
# packages exactly as scripts/setup.sh renders them locally (installed without dependencies: files only).
FROM python:3.11.7-slim-bookworm AS protocols
WORKDIR /app
COPY tools/protocol-requirements.txt tools/
COPY tools/protocols tools/protocols
RUN python -m venv /venv \
 && /venv/bin/pip install -q --disable-pip-version-check --no-deps -r tools/protocol-requirements.txt \
 && /venv/bin/python tools/protocols/render.py /app/generated

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/lib/src ./lib/src
COPY --from=protocols /app/generated ./generated
ENV POLYGLOT_PROTOCOLS_DIR=/app/generated
COPY package.json ./
USER node
CMD ["node", "lib/src/workers/main.js"]
