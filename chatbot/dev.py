"""`chatbot dev`: start whatever the configuration does not point elsewhere, under
`.chatbot/` in the working directory, then a worker and the gateway; stop all of it cleanly
on Ctrl-C or SIGTERM, in reverse order."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from activities.embeddings import EmbedderUnavailable, build_embedder
from activities.sql.sample import SCHEMA as DATA_SAMPLE_SCHEMA
from activities.sql.sample import load_sample as load_data_sample
from activities.sql.sample import reader_url
from chatbot.companies import embed_missing, load_sample_if_empty
from chatbot.embedded import llm, redis, temporal
from chatbot.embedded.postgres import EmbeddedPostgres
from chatbot.embedded.process import EmbeddedError, ManagedProcess, http_ok, port_open
from shared.build import build_id
from shared.config import Settings
from shared.db.engine import create_engine
from shared.db.migrate import upgrade
from shared.temporal_client import connect_temporal
from workers import versioning


class AlreadyRunning(EmbeddedError):
    pass


def _hold_lock(home: Path) -> IO[str]:
    """One `chatbot dev` per directory: a second one says so instead of fighting over ports."""
    home.mkdir(parents=True, exist_ok=True)
    handle = (home / "dev.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise AlreadyRunning(
            f"chatbot dev is already running here (pid {pid}, state in {home}); "
            f"stop it with Ctrl-C in its terminal or `kill {pid}`"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


PROMOTED = "this build is the current version"  # what workers.main logs once it is


def _log_says(path: Path, text: str, *, after: int = 0) -> bool:
    """Whether the log says `text` past byte `after` (what earlier runs wrote)."""
    try:
        with path.open("rb") as log:
            log.seek(after)
            return text.encode() in log.read()
    except OSError:
        return False


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


@dataclass
class DevStack:
    settings: Settings
    out: Callable[[str], None]
    processes: list[ManagedProcess] = field(default_factory=list)
    postgres: EmbeddedPostgres | None = None
    env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.settings.chatbot_home.resolve()

    def _check_free(self, name: str, port: int) -> None:
        if port_open("127.0.0.1", port):
            raise EmbeddedError(
                f"port {port} (for {name}) is already in use; stop what holds it or change "
                "the setting for that port"
            )

    def _run(self, proc: ManagedProcess) -> None:
        started = time.perf_counter()
        self.processes.append(proc)
        proc.start()
        proc.wait_ready()
        self.timings[proc.name] = time.perf_counter() - started
        self.out(f"  {proc.name:<9} ready in {self.timings[proc.name]:.1f} s (pid {proc.pid})")

    def start(self) -> None:
        s, logs = self.settings, self.home / "logs"
        host, tport = _host_port(s.temporal_address)
        api_url = f"http://{s.api_host}:{s.api_port}"
        self._check_free("the gateway", s.api_port)
        if not s.temporal_cloud_enabled and host in ("localhost", "127.0.0.1"):
            if port_open("127.0.0.1", tport):
                self.out(f"  temporal  using the server already on {s.temporal_address}")
            else:
                ui_port = int(s.temporal_ui_url.rsplit(":", 1)[-1].split("/")[0])
                self._check_free("the Temporal UI", ui_port)
                argv = temporal.dev_server_argv(
                    port=tport,
                    db_file=self.home / "temporal.sqlite",
                    namespace=s.temporal_namespace,
                    ui_port=ui_port,
                )
                self._run(
                    temporal.dev_server_process(argv, port=tport, log_path=logs / "temporal.log")
                )
        if s.database_url is None:
            started = time.perf_counter()
            self.postgres = EmbeddedPostgres(self.home / "postgres")
            self.env["DATABASE_URL"] = self.postgres.start()
            self.timings["postgres"] = time.perf_counter() - started
            self.out(f"  postgres  ready in {self.timings['postgres']:.1f} s")
        if s.redis_url is None:
            rport = s.embedded_redis_port
            self._check_free("Redis", rport)
            (self.home / "redis").mkdir(parents=True, exist_ok=True)
            self._run(
                redis.redis_process(
                    port=rport, data_dir=self.home / "redis", log_path=logs / "redis.log"
                )
            )
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{rport}/0"
        if not s.llm_configured:
            self._check_free("the local LLM", s.local_llm_port)
            model = llm.local_model(s.local_llm_model, s.local_llm_model_path)
            base = f"http://127.0.0.1:{s.local_llm_port}"
            argv = llm.llm_server_argv(
                model=model,
                port=s.local_llm_port,
                aliases=[model.alias, s.openai_chat_model],
            )
            self._run(
                ManagedProcess(
                    "llm", argv, log_path=logs / "llm.log", ready=lambda: http_ok(f"{base}/health")
                )
            )
            self.env["OPENAI_BASE_URL"] = f"{base}/v1"
            if "openai_chat_model" not in s.model_fields_set:
                # Name the model served, so /health and the turns say what answered.
                self.env["OPENAI_CHAT_MODEL"] = model.alias
            if "max_tokens" not in s.model_fields_set:
                self.env["MAX_TOKENS"] = str(model.max_tokens)  # what the model's tuned for
        self._migrate()
        child_env = {**self.env, "CHATBOT_HOME": str(self.home)}
        worker_log = logs / "worker.log"
        seen = worker_log.stat().st_size if worker_log.exists() else 0  # it is appended to
        # --promote: the build of the code as it is now serves every new session run
        # (runs started before a code change finish on the build that began them).
        self._run(
            ManagedProcess(
                "worker",
                [sys.executable, "-m", "chatbot", "worker", "--promote"],
                env=child_env,
                log_path=worker_log,
                ready=lambda: _log_says(worker_log, PROMOTED, after=seen),
            )
        )
        self.out(f"  build     {build_id(s)}, current in deployment {s.worker_deployment_name}")
        retired = asyncio.run(self._retire_earlier_builds())
        if retired:
            self.out(
                f"  sessions  {retired} left running on an earlier build ended; their next "
                "message reloads them from Postgres"
            )
        self._run(
            ManagedProcess(
                "gateway",
                [sys.executable, "-m", "chatbot", "serve"],
                env=child_env,
                log_path=logs / "gateway.log",
                ready=lambda: http_ok(f"{api_url}/health"),
            )
        )

    def _migrate(self) -> None:
        url = self.url_of("DATABASE_URL", self.settings.database_url)
        started = time.perf_counter()

        data = self.settings.data_database_url is None  # else the configured data database

        async def run() -> tuple[int, str | None]:
            engine = create_engine(url, pool_size=1, max_overflow=0)
            try:
                await upgrade(engine)
                if data:  # the query_data tool's sample, dated around today
                    await load_data_sample(engine)
                # The local embedder (when installed) embeds the sample, and rows an
                # earlier run left without its vectors, so search by meaning works at once.
                try:
                    embedder = build_embedder(None, self.settings)
                except EmbedderUnavailable as err:
                    raise EmbeddedError(str(err)) from None
                loaded = await load_sample_if_empty(engine, embedder=embedder)
                await embed_missing(engine, embedder)
                return loaded, embedder.name if embedder else None
            finally:
                await engine.dispose()

        sample, embedder_name = asyncio.run(run())
        self.timings["migrations"] = time.perf_counter() - started
        self.out(f"  schema    up to date in {self.timings['migrations']:.1f} s")
        if data:
            self.env["DATA_DATABASE_URL"] = reader_url(url)
            self.out(
                f"  data      sample maintenance data in schema {DATA_SAMPLE_SCHEMA} "
                "(the query_data tool, for tool-calling models)"
            )
        if sample:
            self.out(f"  companies {sample} sample companies loaded (`chatbot companies import`)")
        self.out(
            f"  embedder  {embedder_name}: company search by meaning and recall, offline"
            if embedder_name
            else "  embedder  none: company search by full text (EMBEDDER, `embed` extra)"
        )

    async def _retire_earlier_builds(self) -> int:
        """The previous `chatbot dev` here ran other code, and its workers are gone: its
        sessions' runs, Pinned to that build, would wait for them forever."""
        client = await connect_temporal(self.settings)
        reason = f"chatbot dev restarted on build {build_id(self.settings)}"
        return await versioning.retire_other_builds(client, self.settings, reason=reason)

    def url_of(self, name: str, configured: SecretStr | None) -> str:
        """Where a dependency is: the embedded one started here, else the configured one."""
        return self.env.get(name) or (configured.get_secret_value() if configured else "")

    @property
    def env_file(self) -> Path:
        return self.home / "dev.env"

    def write_env_file(self) -> None:
        """Where this stack's pieces are, for other `chatbot` commands in this directory
        (shared.config.running_dev_env_file); readable by this user only, as it may hold URLs."""
        s = self.settings
        where = {
            **self.env,
            "DATABASE_URL": self.url_of("DATABASE_URL", s.database_url),
            "REDIS_URL": self.url_of("REDIS_URL", s.redis_url),
            "TEMPORAL_ADDRESS": s.temporal_address,
            "TEMPORAL_NAMESPACE": s.temporal_namespace,
        }
        lines = [f"{name}={value}" for name, value in sorted(where.items()) if value]
        text = "# written by a running `chatbot dev`; removed when it stops\n" + "\n".join(lines)
        partial = self.env_file.with_suffix(".part")
        partial.unlink(missing_ok=True)  # created afresh, so its mode is ours
        fd = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        partial.replace(self.env_file)

    def remove_env_file(self) -> None:
        self.env_file.unlink(missing_ok=True)

    def first_exited(self) -> ManagedProcess | None:
        return next((p for p in self.processes if not p.running()), None)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        if self.postgres is not None:
            self.postgres.stop()


def _shown(url: str) -> str:
    """A URL fit to print: its password masked (for `psql`, `redis-cli`, a DB browser)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url or "(not set)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def run_dev(settings: Settings, out: Callable[[str], None]) -> int:
    lock = _hold_lock(settings.chatbot_home)  # raises AlreadyRunning before anything starts
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = DevStack(settings, out)
    # Holding the lock proves no other dev runs here: a dev.env left now is stale, and the
    # worker and gateway started below must not read it.
    stack.remove_env_file()
    began = time.perf_counter()
    code = 0
    try:
        out(f"Starting the embedded stack in {stack.home} ...")
        stack.start()
        stack.write_env_file()
        api = f"http://{settings.api_host}:{settings.api_port}"
        out(
            f"\nReady in {time.perf_counter() - began:.1f} s.\n"
            f"  Gateway      {api}\n"
            f"  API docs     {api}/docs\n"
            f"  Health       {api}/health\n"
            f"  Temporal UI  {settings.temporal_ui_url}\n"
            f"  Postgres     {_shown(stack.url_of('DATABASE_URL', settings.database_url))}\n"
            f"  Redis        {_shown(stack.url_of('REDIS_URL', settings.redis_url))}\n"
            f"  Logs         {stack.home / 'logs'}\n"
            + (
                "  Auth         dev mode (no JWT_SECRET): every request is the user 'local'\n"
                if settings.jwt_secret is None
                else "  Auth         bearer JWT; mint one with `chatbot token USER`\n"
            )
            + "Press Ctrl-C to stop."
        )
        while not stop.wait(0.5):
            dead = stack.first_exited()
            if dead is not None:
                out(f"{dead.name} exited unexpectedly; see {dead.log_path}. Stopping.")
                code = 1
                break
    except EmbeddedError as err:
        out(f"error: {err}")
        code = 1
    finally:
        out("Stopping ...")
        stack.remove_env_file()
        stack.stop()
        with suppress(OSError):
            lock.close()
        out("Stopped.")
    return code
