"""Integrity: every message the service acknowledged is one turn in Postgres, exactly once.

Session ids are `<prefix>.<scenario>.u<user>.r<round>` and each message's text carries its
client_message_id, so the run's rows are found by prefix and a message stored twice under
any id shows up as two user rows with the same text."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text

from shared.db.engine import create_engine

_ROWS = text(
    "SELECT session_id, role, client_message_id, content, turn_id, status FROM messages "
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


@dataclass(frozen=True)
class Sent:
    """One message as its client saw it: what the row-by-row check needs."""

    session_id: str
    client_message_id: str
    acknowledged: bool
    turn_id: str | None = None  # the turn id the service gave it, if any
    reply: str | None = None  # the final reply text the client saw, if any


@dataclass
class RowCheck:
    """Row by row. lost: acknowledged, but not one user row + one assistant row for its
    turn. duplicated: a message stored more than once (two user rows with its id or its
    text, or two assistant rows for one turn). mismatched: the assistant row is not the
    reply to that user message (it must carry the message's `[client_message_id]`), or
    the reply text (or turn id) the client saw is not what Postgres holds for the turn."""

    checked: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    failed_turns: list[str] = field(default_factory=list)  # stored with status failed


def _tag(cmid: str) -> str:
    return f"[{cmid}]"


def verify(rows: Iterable[Mapping[str, Any]], sent: Iterable[Sent]) -> RowCheck:
    rows = list(rows)
    users: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    replies: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    texts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["role"] == "user":
            if row["client_message_id"] is not None:
                users[(row["session_id"], row["client_message_id"])].append(row)
            texts[(row["session_id"], str(row["content"]))] += 1
        elif row["role"] == "assistant":
            replies[str(row["turn_id"])].append(row)
    out = RowCheck()
    for msg in sent:
        out.checked += 1
        key, cmid = (msg.session_id, msg.client_message_id), msg.client_message_id
        mine = users.get(key, [])
        same_text = sum(n for (s, t), n in texts.items() if s == msg.session_id and _tag(cmid) in t)
        turn = str(mine[0]["turn_id"]) if mine else None
        answers = replies.get(turn, []) if turn else []
        if len(mine) > 1 or same_text > 1 or len(answers) > 1:
            out.duplicated.append(cmid)
        if not mine or not answers:
            if msg.acknowledged:
                out.lost.append(cmid)
            continue
        answer = answers[0]
        if answer["status"] == "failed":
            out.failed_turns.append(cmid)
            if msg.reply is not None:  # the client was told of a reply that is not stored
                out.mismatched.append(cmid)
            continue
        content = str(answer["content"])
        wrong_turn = msg.turn_id is not None and msg.turn_id != turn
        wrong_text = msg.reply is not None and msg.reply != content
        if _tag(cmid) not in content or wrong_turn or wrong_text:
            out.mismatched.append(cmid)
    return out


def missing(rows: Iterable[Mapping[str, Any]], sent: Iterable[Sent]) -> int:
    """Acknowledged messages without their two rows yet (a turn may still be storing)."""
    return len(verify(rows, [m for m in sent if m.acknowledged]).lost)
