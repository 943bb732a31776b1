"""The container files, checked without a Docker engine.

hadolint lints the Dockerfile; the Compose files are validated against the Compose
Specification's JSON schema (the copy that the `check-jsonschema` package ships); then the
facts the deployment relies on are asserted. Every external check runs the command a person
would run, and `.ci/lint-containers.sh` lists the same commands (a test keeps them in step).

Run as a script, this module is the schema check for Compose files that use Compose's
`!reset` / `!override` merge tags, which check-jsonschema cannot parse:

    python tests/deploy/test_container_files.py docker-compose.yml docker-compose.cloud.yml
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCRIPT = ROOT / ".ci" / "lint-containers.sh"
BASE = "docker-compose.yml"
CLOUD = "docker-compose.cloud.yml"
APP_SERVICES = ("chatbot-migrate", "chatbot-gateway", "chatbot-worker")
LOCAL_INFRA = ("postgresql", "temporal", "temporal-ui")
# Variables that hold secrets: they come from .env / .env.cloud, never from these files.
SECRET_VARS = (
    "OPENAI_API_KEY",
    "JWT_SECRET",
    "TEMPORAL_CLOUD_API_KEY",
    "DATABRICKS_TOKEN",
)

# The commands, as a person types them at the repository root (.venv/bin on PATH).
LINT_COMMANDS = {
    "hadolint": ["hadolint", "--failure-threshold", "style", "Dockerfile"],
    "compose-schema": [
        "check-jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        BASE,
    ],
    "compose-schema-with-tags": ["python", "tests/deploy/test_container_files.py", BASE, CLOUD],
}
COMPOSE_COMMANDS = {
    "compose-config": ["docker", "compose", "-f", BASE, "config", "--quiet", "--no-env-resolution"],
    "compose-config-cloud": [
        "docker",
        "compose",
        "-f",
        BASE,
        "-f",
        CLOUD,
        "config",
        "--quiet",
        "--no-env-resolution",
    ],
}


# --- Compose YAML with the merge tags -------------------------------------------------


class _Reset:
    """`!reset`: removes the value from the files before (Compose merge rules)."""

    def __repr__(self) -> str:
        return "!reset"


RESET = _Reset()


@dataclass(frozen=True)
class Override:
    """`!override`: replaces the value from the files before instead of merging."""

    value: Any


class ComposeLoader(yaml.SafeLoader):
    """A safe loader that keeps Compose's `!reset` and `!override` tags as markers."""


def _construct_override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    assert isinstance(node, yaml.ScalarNode)
    return Override(loader.construct_scalar(node))


ComposeLoader.add_constructor("!reset", lambda loader, node: RESET)
ComposeLoader.add_constructor("!override", _construct_override)


def load_tagged(path: Path) -> Any:
    # ComposeLoader is a SafeLoader: no arbitrary objects.
    return yaml.load(path.read_text(), Loader=ComposeLoader)


def plain(value: Any) -> Any:
    """The file as a document of its own: `!reset` entries dropped, `!override` unwrapped."""
    if isinstance(value, Override):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if v is not RESET}
    if isinstance(value, list):
        return [plain(v) for v in value if v is not RESET]
    return value


def merge(base: Any, over: Any) -> Any:
    """Compose's merge of `over` onto `base`, for what these files use: mappings merge,
    sequences append, scalars replace, `!override` replaces, `!reset` removes.
    (`docker compose config` is the authority where it runs.)"""
    if isinstance(over, Override):
        return plain(over.value)
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            if value is RESET:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value)
            else:
                merged[key] = plain(value)
        return merged
    if isinstance(base, list) and isinstance(over, list):
        return base + plain(over)
    return plain(over)


def compose_schema() -> dict[str, Any]:
    path = files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def schema_errors(document: Any) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    ]


def main(argv: list[str]) -> int:
    """Validate each Compose file against the Compose Specification schema."""
    if not argv:
        print("usage: test_container_files.py COMPOSE_FILE...", file=sys.stderr)
        return 2
    failed = False
    for name in argv:
        errors = schema_errors(plain(load_tagged(Path(name))))
        for error in errors:
            print(f"{name}: {error}")
        if errors:
            failed = True
        else:
            print(f"{name}: ok (Compose Specification schema)")
    return 1 if failed else 0


# --- helpers for the tests -----------------------------------------------------------


def resolve(argv: list[str]) -> list[str]:
    """The person's command with its program found where the dev extra installs it."""
    program = argv[0]
    if program == "python":
        return [sys.executable, *argv[1:]]
    local = BIN / program
    found = str(local) if local.exists() else shutil.which(program)
    if found is None:
        pytest.fail(f"`{program}` not found: install the dev extra (`pip install -e '.[dev]'`)")
    return [found, *argv[1:]]


def run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        resolve(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120
    )


def docker_compose_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False, timeout=30
    )
    return probe.returncode == 0


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def stages(instructions: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    by_stage: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            current = []
            by_stage[args.split()[-1]] = current
        current.append((keyword, args))
    return by_stage


def args_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def env_of(service: dict[str, Any]) -> dict[str, Any]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    assert isinstance(environment, dict)
    return environment


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, list[tuple[str, str]]]:
    return stages(dockerfile_instructions((ROOT / "Dockerfile").read_text()))


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    document: dict[str, Any] = plain(load_tagged(ROOT / BASE))
    return document


@pytest.fixture(scope="module")
def cloud_raw() -> dict[str, Any]:
    document: dict[str, Any] = load_tagged(ROOT / CLOUD)
    return document


@pytest.fixture(scope="module")
def cloud(base: dict[str, Any], cloud_raw: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = merge(base, cloud_raw)
    return merged


# --- the external checks --------------------------------------------------------------


def test_the_script_runs_the_same_commands_as_the_tests() -> None:
    lines = {line.strip() for line in SCRIPT.read_text().splitlines()}
    for argv in [*LINT_COMMANDS.values(), *COMPOSE_COMMANDS.values()]:
        assert shlex.join(argv) in lines, f"{shlex.join(argv)!r} is not in {SCRIPT}"
    assert os.access(SCRIPT, os.X_OK), f"{SCRIPT} is not executable"


@pytest.mark.parametrize("argv", LINT_COMMANDS.values(), ids=LINT_COMMANDS.keys())
def test_lint_command_passes(argv: list[str]) -> None:
    result = run(argv)
    assert result.returncode == 0, result.stdout + result.stderr
    if argv[0] == "hadolint":
        assert result.stdout.strip() == "", result.stdout  # not even style notes


@pytest.mark.parametrize("argv", COMPOSE_COMMANDS.values(), ids=COMPOSE_COMMANDS.keys())
def test_docker_compose_accepts_the_files(argv: list[str]) -> None:
    if not docker_compose_available():
        pytest.skip("the docker CLI has no compose plugin here; the schema tests stand in")
    result = run(argv)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python\nRUN pip install requests\n")
    result = run(LINT_COMMANDS["hadolint"], cwd=tmp_path)
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3013" in result.stdout, result.stdout


def test_schema_checks_reject_an_invalid_compose_file(tmp_path: Path) -> None:
    bad = "services:\n  app:\n    image: x\n    replica: 3\n    depends_on: !override 7\n"
    (tmp_path / BASE).write_text(bad.replace(" !override", ""))
    (tmp_path / CLOUD).write_text(bad)
    for argv in (LINT_COMMANDS["compose-schema"], [sys.executable, __file__, BASE, CLOUD]):
        result = run(argv, cwd=tmp_path)
        assert result.returncode != 0, result.stdout + result.stderr
    assert any("replica" in e for e in schema_errors(plain(load_tagged(tmp_path / CLOUD))))


def test_merge_follows_compose_rules_for_the_tags() -> None:
    base = {"s": {"environment": {"A": "1", "B": "2"}, "ports": ["1:1"], "x": {"k": 1}}}
    over = {"s": {"environment": {"B": RESET, "C": "3"}, "ports": ["2:2"], "x": Override({})}}
    assert merge(base, over) == {
        "s": {"environment": {"A": "1", "C": "3"}, "ports": ["1:1", "2:2"], "x": {}}
    }


# --- Dockerfile ---------------------------------------------------------------------


def test_dockerfile_is_two_stages_on_a_pinned_slim_python(
    dockerfile: dict[str, list[tuple[str, str]]],
) -> None:
    assert list(dockerfile) == ["builder", "runtime"]
    for name, stage in dockerfile.items():
        assert stage[0] == ("FROM", f"python:3.11-slim AS {name}")


def test_dependencies_are_a_layer_of_their_own(
    dockerfile: dict[str, list[tuple[str, str]]],
) -> None:
    steps = [f"{kw} {args}" for kw, args in dockerfile["builder"]]

    def index(pattern: str) -> int:
        found = [i for i, step in enumerate(steps) if re.search(pattern, step)]
        assert found, f"no step matches {pattern!r}:\n" + "\n".join(steps)
        return found[0]

    copy_manifest = index(r"^COPY pyproject\.toml ")
    install_deps = index(r"^RUN .*pip install --no-cache-dir -r ")
    copy_source = index(r"^COPY \. \.$")
    install_package = index(r"^RUN pip install --no-cache-dir --no-deps \.")
    assert copy_manifest < install_deps < copy_source < install_package
    # The base dependencies and the embed extra (the local embedder), no other extra.
    assert "p['dependencies']" in steps[install_deps]
    assert "p['optional-dependencies']['embed']" in steps[install_deps]
    for step in steps:
        assert "[local" not in step and ".[" not in step, step


def test_runtime_stage_runs_the_cli_as_a_non_root_user(
    dockerfile: dict[str, list[tuple[str, str]]],
) -> None:
    runtime = dockerfile["runtime"]
    assert "--from=builder /opt/venv /opt/venv" in args_of(runtime, "COPY")
    users = args_of(runtime, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert json.loads(args_of(runtime, "ENTRYPOINT")[-1]) == ["chatbot"]
    assert json.loads(args_of(runtime, "CMD")[-1]) == ["serve"]
    assert args_of(runtime, "EXPOSE") == ["8000"]
    env = " ".join(args_of(runtime, "ENV"))
    assert "API_HOST=0.0.0.0" in env and "API_PORT=8000" in env
    # `docker build --build-arg WORKER_BUILD_ID=<sha>` names the worker's build (issue 17).
    assert "WORKER_BUILD_ID=" in " ".join(args_of(runtime, "ARG"))
    assert "WORKER_BUILD_ID=${WORKER_BUILD_ID}" in env
    assert any("org.opencontainers.image.title=" in label for label in args_of(runtime, "LABEL"))


def test_dockerfile_bakes_in_no_secrets(dockerfile: dict[str, list[tuple[str, str]]]) -> None:
    for stage in dockerfile.values():
        for keyword, args in stage:
            if keyword in ("ENV", "ARG"):
                assert not re.search(r"(KEY|SECRET|TOKEN|PASSWORD|PWD)\w*=", args), args
    assert not re.search(r"sk-[A-Za-z0-9_-]{16,}", (ROOT / "Dockerfile").read_text())


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_healthcheck_asks_health_on_the_api_port_with_python(
    dockerfile: dict[str, list[tuple[str, str]]], health_server: ThreadingHTTPServer
) -> None:
    (check,) = args_of(dockerfile["runtime"], "HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert "--timeout=10s" in options
    argv = json.loads(command)
    assert argv[0] == "python" and "http://127.0.0.1:" in argv[-1] and "'8000'" in argv[-1]
    probe = [sys.executable, *argv[1:]]
    port = str(health_server.server_address[1])

    def exit_code() -> int:
        env = {**os.environ, "API_PORT": port}
        return subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode

    assert exit_code() == 0
    _Health.status = 500
    try:
        assert exit_code() != 0
    finally:
        _Health.status = 200


def test_dockerignore_keeps_local_state_out_but_the_package_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for required in (".venv", ".chatbot", ".git", ".env", ".env.*", "bench-results", "tests"):
        assert required in patterns, f"{required} missing from .dockerignore"
    for needed in ("pyproject.toml", "README.md", "chatbot", "shared", "workers"):
        assert needed not in patterns and not any(
            p.startswith("*") and needed.endswith(p[1:]) for p in patterns
        ), f"{needed} is needed by the build"


# --- docker-compose.yml ----------------------------------------------------------------


def test_compose_files_have_no_version_key(base: dict[str, Any], cloud_raw: dict[str, Any]) -> None:
    assert "version" not in base and "version" not in cloud_raw


def test_app_services_share_the_image_env_block_and_env_files(base: dict[str, Any]) -> None:
    services = base["services"]
    shared_env = base["x-chatbot-env"]
    assert shared_env["API_HOST"] == "0.0.0.0"
    assert shared_env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert shared_env["DATABASE_URL"].endswith("@postgresql:5432/${POSTGRES_DB:-chatbot}")
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"]["context"] == "."
        # The build id reaches the image (empty: derived from the code inside it).
        assert service["build"]["args"] == {"WORKER_BUILD_ID": "${WORKER_BUILD_ID:-}"}
        assert env_of(service) == shared_env
        assert service["env_file"] == [
            {"path": ".env", "required": False},
            {"path": ".env.cloud", "required": False},
        ]
    assert services["chatbot-migrate"]["command"] == ["db", "upgrade"]
    assert services["chatbot-gateway"]["command"] == ["serve"]
    assert services["chatbot-worker"]["command"] == ["worker", "--promote"]


def test_worker_scales_by_replicas(base: dict[str, Any]) -> None:
    worker = base["services"]["chatbot-worker"]
    assert worker["deploy"]["replicas"] == 3
    assert "container_name" not in worker and "ports" not in worker
    assert not any("container_name" in s for s in base["services"].values())


def test_startup_order(base: dict[str, Any]) -> None:
    services = base["services"]
    assert depends_on(services["chatbot-migrate"]) == {"postgresql": "service_healthy"}
    assert services["chatbot-migrate"]["restart"] == "no"
    for name in ("chatbot-gateway", "chatbot-worker"):
        assert depends_on(services[name]) == {
            "chatbot-migrate": "service_completed_successfully",
            "temporal": "service_healthy",
            "redis": "service_healthy",
        }
    assert depends_on(services["temporal"]) == {"postgresql": "service_healthy"}
    # A service waited on as healthy must have a health check.
    for service in services.values():
        for dependency, condition in depends_on(service).items():
            if condition == "service_healthy":
                check = services[dependency].get("healthcheck", {})
                assert check.get("test") and not check.get("disable"), dependency


def test_gateway_health_comes_from_the_image_and_the_others_opt_out(
    base: dict[str, Any],
) -> None:
    services = base["services"]
    assert "healthcheck" not in services["chatbot-gateway"]  # the Dockerfile's HEALTHCHECK
    assert "127.0.0.1:8000:8000" in services["chatbot-gateway"]["ports"]
    # The image's check asks for HTTP that the worker and the migration job never serve.
    for name in ("chatbot-worker", "chatbot-migrate"):
        assert services[name]["healthcheck"] == {"disable": True}


def test_local_infrastructure(base: dict[str, Any]) -> None:
    services = base["services"]
    assert services["postgresql"]["image"].startswith("pgvector/pgvector:pg16")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgresql"]["volumes"])
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    assert temporal["environment"]["DB"] == "postgres12"
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert temporal["environment"]["DB_PORT"] == "5432"  # auto-setup defaults to 3306
    assert any(p.endswith("8233:8080") for p in services["temporal-ui"]["ports"])
    assert services["redis"]["image"] == "redis:7-alpine"


def test_no_literal_secrets(base: dict[str, Any], cloud: dict[str, Any]) -> None:
    for name in (BASE, CLOUD):
        text = (ROOT / name).read_text()
        assert not re.search(r"sk-[A-Za-z0-9_-]{16,}", text), name
        for var in SECRET_VARS:
            assert not re.search(rf"^\s*-?\s*{var}\s*[:=]", text, re.MULTILINE), (name, var)
    for document in (base, cloud):
        for service in document["services"].values():
            env = env_of(service)
            assert not set(SECRET_VARS) & set(env)
            for key, value in env.items():
                if re.search(r"PASSWORD|PWD", key):
                    assert re.fullmatch(r"\$\{\w+:-[^}]*\}", str(value)), (key, value)
    assert "${POSTGRES_PASSWORD:-chatbot}@" in base["x-chatbot-env"]["DATABASE_URL"]


# --- docker-compose.cloud.yml ----------------------------------------------------------


def test_cloud_override_validates_merged(cloud: dict[str, Any]) -> None:
    assert schema_errors(cloud) == []


def test_cloud_mode_starts_no_local_temporal_or_postgres(cloud: dict[str, Any]) -> None:
    services = cloud["services"]
    started = {name for name, service in services.items() if not service.get("profiles")}
    assert started == {"redis", *APP_SERVICES}
    for name in LOCAL_INFRA:
        assert services[name]["profiles"] == ["local-infra"]
    for name in started:
        assert set(depends_on(services[name])) <= started, name


def test_cloud_mode_takes_temporal_and_database_from_env_cloud(cloud: dict[str, Any]) -> None:
    services = cloud["services"]
    for name in APP_SERVICES:
        service = services[name]
        env = env_of(service)
        for local in ("DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "ENVIRONMENT"):
            assert local not in env, (name, local)
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert {"path": ".env.cloud", "required": True} in service["env_file"]
        assert service["image"] == services["chatbot-gateway"]["image"]
    gateway = env_of(services["chatbot-gateway"])
    assert gateway["API_HOST"] == "0.0.0.0" and gateway["API_PORT"] == "8000"
    assert services["chatbot-worker"]["deploy"]["replicas"] == 3
    assert depends_on(services["chatbot-gateway"]) == {
        "chatbot-migrate": "service_completed_successfully",
        "redis": "service_healthy",
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
