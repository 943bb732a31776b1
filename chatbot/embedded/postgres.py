"""Postgres 16 with pgvector from the `pgserver` wheel, on a Unix socket in the data dir."""

from __future__ import annotations

import signal
import warnings
from pathlib import Path
from typing import Any

from chatbot.embedded.process import EmbeddedError


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or reattach to) the server and return its postgresql:// URL."""
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and
                # falls back to /tmp, which is fine for pgserver's lock file.
                warnings.simplefilter("ignore")
                from pgserver import get_server  # type: ignore[attr-defined]
        except ImportError as err:
            raise EmbeddedError(
                "pgserver is not installed; install the local extra: "
                "pip install 'temporal-chatbot[local]' (or set DATABASE_URL)"
            ) from err
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        return str(self._server.get_uri())

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server with `pg_ctl -m MODE` (immediate: no checkpoint, crash recovery
        on the way up, as after a power cut) and start it again on the same data dir and
        socket; returns once it accepts connections."""
        if self._server is None:
            raise EmbeddedError("the embedded Postgres is not running")
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        user = self._server.system_user
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.data_dir, user=user, timeout=60)
        self._server.ensure_postgres_running()

    def stop(self) -> None:
        """Fast-shutdown the postmaster ourselves and wait for it: pgserver's own cleanup
        can skip the stop and leave postgres running with a stale pid file."""
        if self._server is None:
            return
        info = self._server.get_postmaster_info()
        process = getattr(info, "process", None)
        if process is not None and process.is_running():
            process.send_signal(signal.SIGINT)  # postgres: SIGINT = fast shutdown
            process.wait(30)
        self._server.cleanup()
        self._server = None
