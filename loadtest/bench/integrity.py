"""Integrity: every message the service acknowledged is one turn in Postgres, exactly once.

Session ids are `<prefix>.<scenario>.u<user>.r<round>` and each message's text carries its
client_message_id, so the run's rows are found by prefix and a message stored twice under
any id shows up as two user rows with the same text."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text

from shared.db.engine import create_engine

_ROWS = text(
    "SELECT session_id, role, client_message_id, content, turn_id FROM messages "
    "WHERE session_id LIKE :pattern"
)


async def fetch_rows(database_url: str, prefix: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(_ROWS, {"pattern": f"{prefix}.%"})
            return [dict(row) for row in result.mappings()]
    finally:
        await engine.dispose()


def check(
    rows: Iterable[Mapping[str, Any]], records: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, dict[str, int]]:
    """Per scenario: messages sent and acknowledged, turns persisted, lost (acknowledged but
    not stored as a user message and its reply) and duplicated (stored more than once)."""
    by_scenario: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_scenario[str(row["session_id"]).split(".")[1]].append(row)
    report = {}
    for scenario, recs in records.items():
        messages = [r for r in recs if r.get("kind") == "message"]
        stored = by_scenario.get(scenario, [])
        answered = {r["turn_id"] for r in stored if r["role"] == "assistant"}
        users = [r for r in stored if r["role"] == "user"]
        texts = Counter((r["session_id"], r["content"]) for r in users)
        persisted = {
            r["client_message_id"]
            for r in users
            if r["turn_id"] in answered and r["client_message_id"] is not None
        }
        acknowledged = {m["client_message_id"] for m in messages if m.get("ok")}
        report[scenario] = {
            "sent": len(messages),
            "acknowledged": len(acknowledged),
            "persisted": len(persisted),
            "lost": len(acknowledged - persisted),
            "duplicated": sum(n - 1 for n in texts.values() if n > 1),
            "unanswered_user_rows": sum(1 for r in users if r["turn_id"] not in answered),
            "persisted_not_acknowledged": len(persisted - acknowledged),
        }
    return report
