# syntax=docker/dockerfile:1
#
# ML Worker image: two stages.
#   build   - creates a virtualenv in /opt/venv with the runtime dependencies and the app (pip, wheels)
#   runtime - python slim + libgomp1 (LightGBM's OpenMP runtime) + the venv; no compilers, no pip
#             caches, no sources besides the installed package; runs as uid/gid 10001.
#
# The command is `ml-worker serve` (the same one the README and tests/e2e/test_serve_like_image.py
# use; that test reads the CMD and ENV lines below). It listens on 0.0.0.0:$ML_WORKER_PORT and shuts
# down gracefully on SIGTERM (still-running jobs are failed with code SHUTDOWN, never lost silently).
# The root filesystem may be read-only: the process only writes to $TMPDIR (/tmp).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build

# Dependencies first (their own layer, reused while pyproject.toml is unchanged).
COPY pyproject.toml ./
RUN python -m venv /opt/venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# Then the application itself, without touching the dependencies again. The contract (openapi.yaml,
# kept at the repository root) is package data of `entrypoints`: the app serves it from there.
COPY README.md ./
COPY src ./src
COPY openapi.yaml ./src/entrypoints/openapi.yaml
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/pip check


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="ml-worker" \
      org.opencontainers.image.description="ML Worker: segmentation, contact-policy and content analysis, LightGBM training over REST"

# libgomp1: OpenMP runtime that LightGBM's wheel links against, from the base image's Debian release
# (not version-pinned, so a rebuild picks up security updates).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 mlworker \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin mlworker

COPY --from=build /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp \
    ML_WORKER_HOST=0.0.0.0 \
    ML_WORKER_PORT=8000 \
    ML_WORKER_LOG_FORMAT=json

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# Liveness (/health/live checks no dependency): runtimes that replace unhealthy containers (Swarm,
# ECS) must not replace one for a Redis or PostgreSQL outage. Readiness is GET /health.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('ML_WORKER_PORT', '8000'), timeout=4)"]

STOPSIGNAL SIGTERM
CMD ["ml-worker", "serve"]
