"""What the model is told about the database: each allowed table with its columns,
types, comments, foreign keys and a few example values, read from Postgres's catalog as
the reader role sees it."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Text columns with at most this many distinct values list them all (statuses, kinds).
ENUM_VALUES = 8
EXAMPLES = 3

_COLUMNS = text(
    """
    SELECT n.nspname AS schema, c.relname AS table, a.attname AS column,
           format_type(a.atttypid, a.atttypmod) AS type,
           col_description(c.oid, a.attnum) AS comment,
           obj_description(c.oid, 'pg_class') AS table_comment,
           obj_description(n.oid, 'pg_namespace') AS schema_comment
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = ANY(:schemas) AND c.relkind IN ('r', 'v', 'm', 'p')
      AND has_table_privilege(c.oid, 'SELECT')
    ORDER BY n.nspname, c.relname, a.attnum
    """
)
_FOREIGN_KEYS = text(
    """
    SELECT n.nspname AS schema, c.relname AS table, a.attname AS column,
           rc.relname AS ref_table, ra.attname AS ref_column
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_class rc ON rc.oid = k.confrelid
    JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
    JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1]
    WHERE k.contype = 'f' AND n.nspname = ANY(:schemas)
    """
)


@dataclass
class Column:
    name: str
    type: str
    comment: str = ""
    references: str = ""
    values: list[str] = field(default_factory=list)  # all of them (few) or examples
    all_values: bool = False


@dataclass
class Table:
    schema: str
    name: str
    comment: str = ""
    rows: int = 0
    columns: list[Column] = field(default_factory=list)


@dataclass
class Catalog:
    tables: list[Table]
    schema_comments: dict[str, str]

    @property
    def known(self) -> frozenset[str]:
        return frozenset(f"{t.schema}.{t.name}" for t in self.tables)

    def describe(self) -> str:
        """The catalog as the prompt shows it."""
        lines = [f"Schema {s}: {c}" for s, c in self.schema_comments.items() if c]
        for t in self.tables:
            lines.append(f"\nTable {t.schema}.{t.name} ({t.rows} rows): {t.comment}".rstrip(": "))
            for c in t.columns:
                line = f"  {c.name} {c.type}"
                if c.references:
                    line += f" -> {c.references}"
                if c.comment:
                    line += f": {c.comment}"
                if c.values:
                    shown = ", ".join(repr(v) for v in c.values)
                    line += f" (values: {shown})" if c.all_values else f" (e.g. {shown})"
                lines.append(line)
        return "\n".join(lines)


async def read_catalog(engine: AsyncEngine, schemas: tuple[str, ...]) -> Catalog:
    async with engine.connect() as conn:
        rows = (await conn.execute(_COLUMNS, {"schemas": list(schemas)})).mappings().all()
        keys = (await conn.execute(_FOREIGN_KEYS, {"schemas": list(schemas)})).mappings().all()
        refs = {
            (k["schema"], k["table"], k["column"]): f"{k['ref_table']}.{k['ref_column']}"
            for k in keys
        }
        tables: dict[tuple[str, str], Table] = {}
        comments: dict[str, str] = {}
        for r in rows:
            comments[r["schema"]] = r["schema_comment"] or ""
            table = tables.setdefault(
                (r["schema"], r["table"]),
                Table(r["schema"], r["table"], r["table_comment"] or ""),
            )
            table.columns.append(
                Column(
                    r["column"],
                    r["type"],
                    r["comment"] or "",
                    refs.get((r["schema"], r["table"], r["column"]), ""),
                )
            )
        for table in tables.values():
            name = f'"{table.schema}"."{table.name}"'
            table.rows = int(await conn.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
            for column in table.columns:
                if column.type != "text" or column.references:
                    continue
                found = await conn.execute(
                    text(
                        f'SELECT DISTINCT "{column.name}" FROM {name} '
                        f'WHERE "{column.name}" IS NOT NULL LIMIT {ENUM_VALUES + 1}'
                    )
                )
                values = sorted(str(v) for (v,) in found)
                column.all_values = len(values) <= ENUM_VALUES
                column.values = values if column.all_values else values[:EXAMPLES]
    return Catalog(tables=list(tables.values()), schema_comments=comments)
