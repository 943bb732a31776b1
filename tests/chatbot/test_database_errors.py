"""A database that is away is a 503 with Retry-After, never a 500: found by the chaos
suite's Postgres restart (`-m immediate`), where a connection made while Postgres came
back failed with asyncpg's "connection was closed in the middle of operation"."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import httpx
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from chatbot.errors import database_unreachable, install_error_handlers


class _AdaptedError(Exception):
    """Stands in for SQLAlchemy's AsyncAdapt_asyncpg_dbapi.Error: not an OSError."""


def _connect_failed_mid_restart() -> DBAPIError:
    try:
        try:
            try:
                raise ConnectionResetError(104, "Connection reset by peer")
            except ConnectionResetError as reset:
                raise asyncpg.exceptions.ConnectionDoesNotExistError(
                    "connection was closed in the middle of operation"
                ) from reset
        except asyncpg.exceptions.ConnectionDoesNotExistError as closed:
            raise _AdaptedError(str(closed)) from closed
    except _AdaptedError as adapted:
        return DBAPIError("connect", None, adapted, connection_invalidated=False)


def _bad_query() -> DBAPIError:
    return DBAPIError("SELECT", None, _AdaptedError("syntax error"), connection_invalidated=False)


def test_a_connection_lost_while_connecting_is_the_database_being_away() -> None:
    assert database_unreachable(_connect_failed_mid_restart())
    startup = asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
    assert database_unreachable(DBAPIError("connect", None, startup))
    assert not database_unreachable(_bad_query())


async def test_it_is_answered_503_with_retry_after_and_a_bad_query_500() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/restarting")
    async def restarting() -> None:
        raise _connect_failed_mid_restart()

    @app.get("/bad")
    async def bad() -> None:
        raise _bad_query()

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        away = await client.get("/restarting")
        wrong = await client.get("/bad")
    assert away.status_code == 503 and int(away.headers["retry-after"]) >= 1
    assert wrong.status_code == 500
