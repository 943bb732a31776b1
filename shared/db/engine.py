"""The pooled async engine: SQLAlchemy 2.0 on asyncpg.

URLs are accepted in the forms people paste (`postgres://`, `postgresql://` with libpq's
`sslmode`), and PgBouncer in transaction mode (Neon's pooled endpoint) gets asyncpg's
statement caches turned off, because a prepared statement lives on one server connection
and the next transaction may run on another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.config import Settings

# libpq's sslmode values map one to one onto asyncpg's `ssl` argument.
_SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


@dataclass(frozen=True)
class ConnectTarget:
    """Where and how to connect: an asyncpg SQLAlchemy URL plus asyncpg connect arguments."""

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    pgbouncer: bool = False


def is_pooler_host(url: URL) -> bool:
    """Neon names its PgBouncer endpoints `<endpoint>-pooler.<region>...`."""
    return "-pooler" in (url.host or "")


def connect_target(database_url: str, *, pgbouncer: bool | None = None) -> ConnectTarget:
    """Normalise a Postgres URL for SQLAlchemy + asyncpg and pick the connect arguments."""
    url = make_url(database_url)
    if url.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        url = url.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"not a Postgres URL: scheme {url.drivername!r}")
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    sslmode = query.pop("sslmode", None)
    if isinstance(sslmode, str):
        if sslmode not in _SSLMODES:
            raise ValueError(f"sslmode={sslmode!r} is not one of {sorted(_SSLMODES)}")
        connect_args["ssl"] = sslmode
    # asyncpg negotiates SCRAM itself; libpq's channel_binding flag has no asyncpg equivalent.
    query.pop("channel_binding", None)
    url = url.set(query=query)
    use_pgbouncer = is_pooler_host(url) if pgbouncer is None else pgbouncer
    if use_pgbouncer:
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        # Unique names, so two clients' unnamed-cache statements never collide on one backend.
        connect_args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid4()}__"
    return ConnectTarget(url=url, connect_args=connect_args, pgbouncer=use_pgbouncer)


def create_engine(
    database_url: str,
    *,
    pool_size: int = 20,
    max_overflow: int = 30,
    pool_timeout: float = 10.0,
    pgbouncer: bool | None = None,
) -> AsyncEngine:
    target = connect_target(database_url, pgbouncer=pgbouncer)
    engine = create_async_engine(
        target.url,
        connect_args=target.connect_args,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose server side has gone (Postgres restarted, a pooler or
    Neon closed it) is replaced before use, not handed out to fail.

    Instead of SQLAlchemy's `pool_pre_ping`: asyncpg learns of a closed socket by itself
    (the event loop watches it), so this costs no round trip, where the pre-ping's
    BEGIN, `;` and ROLLBACK took three per checkout: 17 % of the gateway's CPU per turn,
    more than its queries (2026-12-04). A connection cut without the socket closing is
    found by its first statement instead, which fails as any outage does (a 503 from the
    gateway, a retried activity in the worker)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the pooled connection was closed by the server")


def data_engine_from_settings(settings: Settings) -> AsyncEngine | None:
    """The query_data tool's connections (DATA_DATABASE_URL, a SELECT-only role), or
    None where no data database is configured."""
    if settings.data_database_url is None:
        return None
    return create_engine(
        settings.data_database_url.get_secret_value(),
        pool_size=5,
        max_overflow=5,
        pool_timeout=settings.db_pool_timeout_seconds,
        pgbouncer=settings.db_pgbouncer,
    )


def engine_from_settings(settings: Settings) -> AsyncEngine:
    if settings.database_url is None:
        raise ValueError(
            "DATABASE_URL is not set (run `chatbot dev` to start an embedded Postgres)"
        )
    return create_engine(
        settings.database_url.get_secret_value(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pgbouncer=settings.db_pgbouncer,
    )
