"""The stack a benchmark (and the chaos suite) runs on, all on this machine: the fake OpenAI
server (and optionally the fake Databricks one), a Temporal dev server (unless one is
given), then what `chatbot dev` starts (Postgres and Redis, embedded unless DATABASE_URL /
REDIS_URL point elsewhere or `own_backends` is set, migrations, a worker, the gateway), more
workers, and the direct-path app. Everything on free loopback ports in a fresh home, each
piece a separate process."""

from __future__ import annotations

import secrets
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from chatbot.dev import DevStack
from chatbot.embedded import temporal
from chatbot.embedded.process import EmbeddedError, ManagedProcess, http_ok
from loadtest.bench.config import BenchConfig, FakeLlmControl
from shared.config import Settings, load_settings

FAKE_API_KEY = "bench-key"
FAKE_DATABRICKS_TOKEN = "bench-databricks-token"
FAKE_VS_ENDPOINT = "fake-vs-endpoint"
FAKE_VS_INDEX = "main.default.companies"
PYTHON_M = (sys.executable, "-m")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchStack:
    def __init__(self, config: BenchConfig, home: Path, out: Callable[[str], None]) -> None:
        self.config = config
        self.home = home
        self.out = out
        self.processes: list[ManagedProcess] = []  # started before the dev stack
        self.late: list[ManagedProcess] = []  # started after it
        self.dev: DevStack | None = None
        self.jwt_secret = secrets.token_hex(24)
        self.llm_root = f"http://127.0.0.1:{free_port()}"
        self.databricks_root = f"http://127.0.0.1:{free_port()}" if config.databricks else None
        self.direct_url = f"http://127.0.0.1:{free_port()}"
        self.tools_port = free_port() if config.tool_calling else None
        self.cache_port = free_port() if config.cache else None
        self.temporal_address = config.temporal_address or f"127.0.0.1:{free_port()}"
        self.env: dict[str, str] = {
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_UI_URL": f"http://127.0.0.1:{free_port()}",
            "API_PORT": str(free_port()),
            "EMBEDDED_REDIS_PORT": str(free_port()),
            "LOCAL_LLM_PORT": str(free_port()),
            "OPENAI_BASE_URL": f"{self.llm_root}/v1",
            "OPENAI_API_KEY": FAKE_API_KEY,
            # Every simulated user has its own token; no rate limit gets in the way.
            "JWT_SECRET": self.jwt_secret,
            "RATE_LIMIT_PER_MINUTE": "0",
            **config.extra_env,
        }
        if self.databricks_root is not None:
            self.env |= {
                "DATABRICKS_HOST": self.databricks_root,
                "DATABRICKS_TOKEN": FAKE_DATABRICKS_TOKEN,
                "DATABRICKS_ENDPOINT_NAME": FAKE_VS_ENDPOINT,
                "DATABRICKS_INDEX_NAME": FAKE_VS_INDEX,
            }
        own: dict[str, object] = (
            {"database_url": None, "redis_url": None} if config.own_backends else {}
        )
        self.settings: Settings = load_settings(
            chatbot_home=home, **{key.lower(): value for key, value in self.env.items()}, **own
        )
        if self.settings.temporal_cloud_enabled:
            raise EmbeddedError(
                "TEMPORAL_CLOUD_API_KEY is set (environment or .env.cloud): the benchmark "
                "measures a Temporal server on this machine; unset it or pass --temporal-address"
            )
        self.llm = FakeLlmControl(self.llm_root)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['API_PORT']}"

    @property
    def tools_gateway_url(self) -> str:
        """The gateway whose sessions run tool-calling turns (TOOL_CALLING on)."""
        if self.tools_port is None:
            raise EmbeddedError("the stack has no tool-calling gateway: no scenario needs one")
        return f"http://127.0.0.1:{self.tools_port}"

    @property
    def cache_gateway_url(self) -> str:
        """The gateway whose workers answer repeated questions from the response cache."""
        if self.cache_port is None:
            raise EmbeddedError("the stack has no caching gateway: no scenario needs one")
        return f"http://127.0.0.1:{self.cache_port}"

    @property
    def namespace(self) -> str:
        return self.settings.temporal_namespace

    @property
    def database_url(self) -> str:
        if self.dev is not None and "DATABASE_URL" in self.dev.env:
            return self.dev.env["DATABASE_URL"]
        if self.settings.database_url is None:
            raise EmbeddedError("the stack has no database yet")
        return self.settings.database_url.get_secret_value()

    @property
    def redis_url(self) -> str:
        if self.dev is not None and "REDIS_URL" in self.dev.env:
            return self.dev.env["REDIS_URL"]
        if self.settings.redis_url is None:
            raise EmbeddedError("the stack has no Redis yet")
        return self.settings.redis_url.get_secret_value()

    def process(self, name: str) -> ManagedProcess:
        """One of the stack's processes by name: temporal, fake-llm, redis, worker, ..."""
        own = [*self.processes, *self.late, *(self.dev.processes if self.dev else [])]
        for proc in own:
            if proc.name == name:
                return proc
        raise KeyError(name)

    def _run(self, proc: ManagedProcess, *, late: bool = False) -> None:
        (self.late if late else self.processes).append(proc)
        proc.start()
        proc.wait_ready()
        self.out(f"  {proc.name:<9} ready (pid {proc.pid})")

    def start(self) -> None:
        logs = self.home / "logs"
        llm_port = self.llm_root.rsplit(":", 1)[1]
        self._run(
            ManagedProcess(
                "fake-llm",
                [
                    *PYTHON_M,
                    "loadtest.fakes",
                    "openai",
                    "--port",
                    llm_port,
                    "--api-key",
                    FAKE_API_KEY,
                ],
                log_path=logs / "fake-llm.log",
                ready=lambda: http_ok(f"{self.llm_root}/_fake/script"),
            )
        )
        if self.databricks_root is not None:
            root = self.databricks_root
            self._run(
                ManagedProcess(
                    "fake-databricks",
                    [
                        *(*PYTHON_M, "loadtest.fakes", "databricks"),
                        *("--port", root.rsplit(":", 1)[1], "--token", FAKE_DATABRICKS_TOKEN),
                        *("--index-name", FAKE_VS_INDEX),
                    ],
                    log_path=logs / "fake-databricks.log",
                    ready=lambda: http_ok(f"{root}/_fake/script"),
                )
            )
        if self.config.temporal_address is None:
            self._start_temporal(logs)
        self.dev = DevStack(self.settings, self.out, env=dict(self.env))
        self.dev.start()
        for n in range(2, self.config.workers + 1):  # more replicas on the same task queue
            self._run(
                ManagedProcess(
                    f"worker{n}",
                    [*PYTHON_M, "workers"],
                    env={**self.dev.env, "CHATBOT_HOME": str(self.home)},
                    log_path=logs / f"worker{n}.log",
                    ready=lambda: True,
                ),
                late=True,
            )
        if self.tools_port is not None:
            env = {**self.dev.env, "CHATBOT_HOME": str(self.home)}
            self._start_tools_gateway(logs, self.tools_port, env)
        if self.cache_port is not None:
            env = {**self.dev.env, "CHATBOT_HOME": str(self.home)}
            self._start_cache_pair(logs, self.cache_port, env)
        if not self.config.direct:
            return
        direct_port = self.direct_url.rsplit(":", 1)[1]
        self._run(
            ManagedProcess(
                "direct",
                [
                    *PYTHON_M,
                    "loadtest.bench.direct",
                    *("--port", direct_port, "--llm-url", f"{self.llm_root}/v1"),
                    *("--api-key", FAKE_API_KEY, "--model", self.settings.openai_chat_model),
                ],
                log_path=logs / "direct.log",
                ready=lambda: http_ok(f"{self.direct_url}/health"),
            ),
            late=True,
        )

    def _start_tools_gateway(self, logs: Path, port: int, env: dict[str, str]) -> None:
        """A second gateway on the same workers, whose sessions run tool-calling turns:
        the gateway decides a session's path when it starts the workflow. Named as a
        replica of the gateway, so the resource monitor counts it with the first."""
        url = f"http://127.0.0.1:{port}"
        env = {**env, "API_PORT": str(port), "TOOL_CALLING": "on"}
        self._run(
            ManagedProcess(
                "gateway2",
                [*PYTHON_M, "chatbot", "serve"],
                env=env,
                log_path=logs / "gateway2.log",
                ready=lambda: http_ok(f"{url}/health"),
            ),
            late=True,
        )

    def _start_cache_pair(self, logs: Path, port: int, env: dict[str, str]) -> None:
        """A worker with CACHE_MODE=exact on a task queue (and deployment) of its own, and
        a gateway sending its sessions there: the other scenarios' turns never look up
        or fill the cache."""
        url = f"http://127.0.0.1:{port}"
        env = {
            **env,
            "CACHE_MODE": env.get("CACHE_MODE", "exact"),
            "TEMPORAL_TASK_QUEUE": "chat-sessions-cached",
            "WORKER_DEPLOYMENT_NAME": "chatbot-cached",
        }
        self._run(
            ManagedProcess(
                "cache-worker",
                [*PYTHON_M, "workers"],
                env=env,
                log_path=logs / "cache-worker.log",
                ready=lambda: True,
            ),
            late=True,
        )
        self._run(
            ManagedProcess(
                "cache-gateway",
                [*PYTHON_M, "chatbot", "serve"],
                env={**env, "API_PORT": str(port)},
                log_path=logs / "cache-gateway.log",
                ready=lambda: http_ok(f"{url}/health"),
            ),
            late=True,
        )

    def _start_temporal(self, logs: Path) -> None:
        port = int(self.temporal_address.rsplit(":", 1)[1])
        # In memory by default: with `chatbot dev`'s SQLite file, the file's writes are the
        # bottleneck (measured: floor p50 35 ms vs 13 ms, 21 vs 217 no-op updates/s).
        db_file = None if self.config.temporal_in_memory else self.home / "temporal.sqlite"
        argv = temporal.dev_server_argv(
            port=port, db_file=db_file, namespace=self.namespace, ui_port=None
        )
        for value in self.config.temporal_config:
            argv += ["--dynamic-config-value", value]
        argv += self.config.temporal_args
        self._run(temporal.dev_server_process(argv, port=port, log_path=logs / "temporal.log"))

    def pids(self) -> dict[str, int]:
        """Process ids by role, for the resource monitor."""
        own = [*self.processes, *self.late, *(self.dev.processes if self.dev else [])]
        return {p.name: p.pid for p in own if p.pid is not None and p.running()}

    @property
    def postgres_dir(self) -> Path | None:
        """The embedded Postgres data directory (its processes name it), if it runs."""
        if self.dev is None or self.dev.postgres is None:
            return None
        return self.dev.postgres.data_dir

    def stop(self) -> None:
        """Stop everything in reverse start order (also after a failed start)."""
        for proc in reversed(self.late):
            proc.stop()
        if self.dev is not None:
            self.dev.stop()
        for proc in reversed(self.processes):
            proc.stop()
