"""Running a checked query: in a read-only transaction with a statement timeout and the
allowed schemas as the search path, on a connection of the SELECT-only role; the rows
come back as JSON-ready values."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.sql.checker import CheckedSql

QUERY_CANCELED = "57014"  # statement_timeout
INSUFFICIENT_PRIVILEGE = "42501"
READ_ONLY_TRANSACTION = "25006"


class SqlFailed(RuntimeError):
    """The database refused or stopped the query; the message is Postgres's (for the
    model to correct its query), `code` its SQLSTATE."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False  # more rows than the limit: `rows` holds the first ones
    ms: float = 0.0


def _plain(value: Any) -> Any:
    """A value as JSON carries it (and a CSV writes it)."""
    if isinstance(value, Decimal):
        return float(value) if value % 1 else int(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID | bytes | memoryview):
        return str(value) if not isinstance(value, bytes | memoryview) else bytes(value).hex()
    return value


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def run_query(
    engine: AsyncEngine,
    checked: CheckedSql,
    *,
    schemas: tuple[str, ...],
    row_limit: int,
    timeout_seconds: float,
) -> QueryResult:
    started = time.perf_counter()
    try:
        async with engine.connect() as conn, conn.begin():
            await conn.execute(text("SET TRANSACTION READ ONLY"))
            await conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_seconds * 1000)}"))
            await conn.execute(
                text(f"SET LOCAL search_path = {', '.join(_quoted(s) for s in schemas)}")
            )
            # As written: no bind parameters, so a ':' or '%' in its literals stays as is.
            result = await conn.exec_driver_sql(checked.sql)
            columns = list(result.keys())
            fetched = result.fetchmany(row_limit + 1)
    except DBAPIError as err:
        code = getattr(err.orig, "sqlstate", None) or ""
        if code == QUERY_CANCELED:
            raise SqlFailed(
                f"the query ran past its {timeout_seconds:g} s limit and was stopped; "
                "write a cheaper one",
                code,
            ) from None
        message = str(getattr(err.orig, "args", [err])[0] or err).splitlines()[0]
        raise SqlFailed(message.removeprefix("<class ").strip(), code) from None
    rows = [[_plain(v) for v in row] for row in fetched[:row_limit]]
    return QueryResult(
        columns=columns,
        rows=rows,
        truncated=len(fetched) > row_limit,
        ms=(time.perf_counter() - started) * 1000,
    )
