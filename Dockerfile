# syntax=docker/dockerfile:1
#
# The chat backend's one image; the command picks the role:
#   docker build -t temporal-chatbot .
#   docker run --env-file .env.cloud -p 8000:8000 temporal-chatbot            # gateway (`serve`)
#   docker run --env-file .env.cloud --no-healthcheck temporal-chatbot worker
#   docker run --env-file .env.cloud --no-healthcheck temporal-chatbot db upgrade
# Configuration is environment variables only (see .env.cloud.example); nothing secret is
# baked in. The image holds the base dependencies, the `embed` extra (the local
# embedding model: search by meaning without an embeddings API) and the `data` extra
# (the query_data tool's charts); the `local` extra
# (embedded Temporal, Postgres, Redis, LLM for `chatbot dev`) is for laptops, not for
# containers.
# Checked by `.ci/lint-containers.sh` (hadolint).

# ---- builder: a virtualenv with the dependencies, then the package --------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"
WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when the
# dependency list changes, not on every source edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; deps = p['dependencies'] + p['optional-dependencies']['embed'] + p['optional-dependencies']['data'] + p['optional-dependencies']['s3']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && pip install --no-cache-dir -r /tmp/requirements.txt

# Then the source (.dockerignore keeps tests, virtualenvs, caches and .env files out).
COPY . .
RUN pip install --no-cache-dir --no-deps . \
 && pip check

# ---- runtime: the virtualenv on a clean base, as a non-root user -----------------------
FROM python:3.11-slim AS runtime

# docker build --build-arg VERSION="$(git describe --tags --always)" \
#   --build-arg WORKER_BUILD_ID="$(git rev-parse --short HEAD)" ...
ARG VERSION=dev
# The Worker Deployment Version the worker runs as (README, "Changing the workflow");
# empty: derived at start from the package version and a hash of the code in the image.
ARG WORKER_BUILD_ID=
LABEL org.opencontainers.image.title="temporal-chatbot" \
      org.opencontainers.image.description="Temporal-orchestrated chat backend: gateway (serve), worker, migrations (db upgrade)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

RUN groupadd --system --gid 10001 chatbot \
 && useradd --system --uid 10001 --gid chatbot --no-log-init \
      --home-dir /app --shell /usr/sbin/nologin chatbot

COPY --from=builder /opt/venv /opt/venv

# API_HOST: listen on every interface of the container (the code's default is loopback).
# ENVIRONMENT=production: refuses to start without a real JWT_SECRET; docker-compose.yml
# sets development for the local stack.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    ENVIRONMENT=production \
    WORKER_BUILD_ID=${WORKER_BUILD_ID}

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# Liveness of the gateway. slim has no curl, so Python asks. /health answers 200 while the
# process serves (it probes each dependency for up to 3 s, hence the 10 s timeout).
# The worker and the migration job serve no HTTP: run them with --no-healthcheck
# (docker-compose.yml disables it for them).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('API_PORT', '8000'), timeout=9)"]

ENTRYPOINT ["chatbot"]
CMD ["serve"]
