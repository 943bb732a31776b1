"""The stack the chaos suite breaks: the bench's stack builder (loadtest.bench.stack) with
its own embedded Postgres and redis-server, a Temporal dev server on a SQLite file, two
workers, the gateway, the fake OpenAI and fake Databricks servers, each a separate
process that can be SIGKILLed and started again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chatbot.embedded.process import EmbeddedError, http_ok, wait_for
from loadtest.bench.config import BenchConfig
from loadtest.bench.stack import BenchStack

OPENAI_TIMEOUT_SECONDS = 60.0
# Short keep-alives, so a quiet stream (a slow first token, a slow tool) shows it is alive.
SETTINGS = {
    "MAX_CONCURRENT_ACTIVITIES": "100",
    "MAX_CONCURRENT_ACTIVITY_TASKS": "100",
    "OPENAI_TIMEOUT_SECONDS": str(OPENAI_TIMEOUT_SECONDS),
    "STREAM_KEEPALIVE_SECONDS": "5",
    "INTENT_LLM_FALLBACK": "false",
}


class ChaosStack:
    def __init__(self, home: Path, out: Callable[[str], None]) -> None:
        config = BenchConfig(
            scenarios=[],
            out_root=home,
            temporal_in_memory=False,  # restarted on its SQLite file
            extra_env=dict(SETTINGS),
            workers=2,
            direct=False,
            databricks=True,
            own_backends=True,
        )
        self.bench = BenchStack(config, home, out)
        self.out = out
        self.openai_timeout = OPENAI_TIMEOUT_SECONDS

    @property
    def gateway_url(self) -> str:
        return self.bench.gateway_url

    @property
    def llm_root(self) -> str:
        return self.bench.llm_root

    @property
    def databricks_root(self) -> str | None:
        return self.bench.databricks_root

    @property
    def jwt_secret(self) -> str:
        return self.bench.jwt_secret

    @property
    def database_url(self) -> str:
        return self.bench.database_url

    def start(self) -> None:
        self.bench.start()

    def stop(self) -> None:
        self.bench.stop()

    def kill(self, name: str) -> None:
        """SIGKILL one process and reap it."""
        proc = self.bench.process(name).proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def restart(self, name: str) -> None:
        """Start a killed (or exited) process again, as it was, and wait until ready."""
        managed = self.bench.process(name)
        if managed.running():
            raise EmbeddedError(f"{name} is still running")
        managed.start()
        managed.wait_ready()
        self.out(f"    {name} restarted (pid {managed.pid})")

    def restart_postgres(self, mode: str) -> None:
        dev = self.bench.dev
        if dev is None or dev.postgres is None:
            raise EmbeddedError("the stack has no embedded Postgres")
        dev.postgres.restart(mode)
        self.out(f"    postgres restarted (-m {mode})")

    def dead(self) -> list[str]:
        dev = self.bench.dev
        own = [*self.bench.processes, *self.bench.late, *(dev.processes if dev else [])]
        return [p.name for p in own if not p.running()]

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every process runs and the gateway says all its dependencies answer."""
        wait_for(
            lambda: not self.dead() and http_ok(f"{self.gateway_url}/ready"),
            timeout=timeout,
            what="the stack to be healthy (every process up, /ready 200)",
            interval=0.2,
        )
