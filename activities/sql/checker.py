"""The check a model's SQL passes before it runs: one read-only statement (a SELECT, with
CTEs and set operations), over the allowed schemas only, calling no function that reads
files, talks to other servers or changes settings; then wrapped in a row limit.

It is the first of three layers: the query also runs in a read-only transaction with a
statement timeout, as a role that may only read the allowed schemas (`runner`)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

# Functions no question needs and an attacker would want: server files, other servers,
# settings, sessions of others, advisory locks, large objects.
DENIED_FUNCTION_PREFIXES = (
    "pg_read",
    "pg_ls",
    "pg_stat_file",
    "pg_terminate",
    "pg_cancel",
    "pg_reload",
    "pg_rotate",
    "pg_advisory",
    "pg_try_advisory",
    "lo_",
    "dblink",
    "set_config",
    "current_setting",
    "query_to_xml",
    "table_to_xml",
    "cursor_to_xml",
)
WRITES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Copy,
    exp.Grant,
    exp.TruncateTable,
    exp.Set,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.LockingProperty,
)


class SqlRejected(ValueError):
    """The query is not one this tool runs; the message says why (the model is told)."""


@dataclass(frozen=True)
class CheckedSql:
    sql: str  # what runs: the query within a row limit
    original: str  # what the model wrote, normalized
    tables: tuple[str, ...]  # schema.table it reads


def check_sql(
    sql: str,
    *,
    schemas: tuple[str, ...],
    row_limit: int,
    known: frozenset[str] | None = None,
) -> CheckedSql:
    """The query, checked and limited to `row_limit` + 1 rows (one more, to tell a result
    that was cut); raises SqlRejected. `known`: the allowed schemas' tables as
    schema.table; an unqualified name must be one of them (Postgres would otherwise look
    it up in pg_catalog first)."""
    if "\x00" in sql:
        raise SqlRejected("the query contains a NUL character")
    try:
        statements = [s for s in sqlglot.parse(sql, read="postgres") if s is not None]
    except ParseError as err:
        raise SqlRejected(f"the query does not parse: {str(err).splitlines()[0]}") from None
    if len(statements) != 1:
        raise SqlRejected(f"write exactly one statement, not {len(statements)}")
    (tree,) = statements
    if not isinstance(tree, exp.Query):
        raise SqlRejected(f"only a SELECT may run here, not {tree.key.upper()}")
    for node in tree.walk():
        if isinstance(node, WRITES):
            raise SqlRejected(f"only reading is allowed here, not {node.key.upper()}")
        if isinstance(node, exp.Select) and node.args.get("into"):
            raise SqlRejected("SELECT INTO creates a table; only reading is allowed here")
        if isinstance(node, exp.Select) and node.args.get("locks"):
            raise SqlRejected("row locks (FOR UPDATE/SHARE) are not allowed here")
        if isinstance(node, exp.Func):
            name = (node.sql_name() if not isinstance(node, exp.Anonymous) else node.name).lower()
            if name.startswith(DENIED_FUNCTION_PREFIXES):
                raise SqlRejected(f"the function {name} is not allowed here")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables: list[str] = []
    for table in tree.find_all(exp.Table):
        if not table.name:  # a table function, e.g. generate_series(...)
            continue
        schema = (table.db or "").lower()
        if not schema and table.name.lower() in ctes:
            continue
        if table.catalog:
            raise SqlRejected(f"{table.sql()} names another database")
        if schema and schema not in schemas:
            allowed = ", ".join(schemas)
            raise SqlRejected(f"{table.sql()} is outside the data this tool reads ({allowed})")
        name = f"{schema or schemas[0]}.{table.name.lower()}"
        if known is not None and name not in known:
            raise SqlRejected(f"there is no table {table.name} in {', '.join(schemas)}")
        tables.append(name)
    original = tree.sql(dialect="postgres")
    limited = f"SELECT * FROM ({original}) AS result LIMIT {row_limit + 1}"
    return CheckedSql(sql=limited, original=original, tables=tuple(dict.fromkeys(tables)))
