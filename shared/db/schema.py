"""Questions about the live schema that code paths depend on."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def has_column(engine: AsyncEngine, table: str, column: str) -> bool:
    """True when `table.column` exists, e.g. the optional pgvector `embedding` columns,
    which migrations add only where the extension is available."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT 1 FROM information_schema.columns "
                "WHERE table_name = :t AND column_name = :c"
            ),
            {"t": table, "c": column},
        )
        return found.first() is not None
