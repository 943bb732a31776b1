"""Where the milliseconds of a turn go: turns sent one after another over SSE (in one or
more sessions at once), each placed on one clock from three sources. The client records
when it sent the message and when the response, the first token and the final event
arrived; the session's Temporal history gives when each workflow task and the turn's
generation activity happened on the server (matched to the turn by its update id); the
turn's Redis stream gives when the worker appended its first token and its final event
(entry ids are Redis' clock in ms). All three run on this machine, so they share a clock.

The result is, for every point of a turn, the median time from the client's send, and the
gap from the point before: what each hop costs."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis.asyncio import Redis
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from chatbot.auth import mint_token
from shared.models import turn_id_for, workflow_id
from shared.streams import stream_key

# Measured turns per session: below the recent-turns window (10 by default), so none
# retrieves or folds.
SESSION_TURNS = 8
# The points of a turn, in the order they happen when nothing overlaps.
POINTS = (
    "client sent",
    "update received (WFT scheduled)",
    "WFT 1 started",
    "WFT 1 completed (accepted)",
    "client response headers",
    "activity started",
    "first token in Redis",
    "client first token",
    "activity completed",
    "WFT 2 started",
    "final in Redis",
    "client final",
    "WFT 2 completed",
)


GENERATION = frozenset({"generate_reply", "model_step"})


@dataclass
class TurnTimes:
    session_id: str
    update_id: str  # the client_message_id
    at: dict[str, float] = field(default_factory=dict)  # point -> epoch seconds

    @property
    def turn_id(self) -> str:
        return turn_id_for(self.session_id, self.update_id)


async def _send(http: httpx.AsyncClient, session_id: str, text: str, token: str) -> TurnTimes:
    """One SSE turn; the client's own points, as epoch seconds."""
    message_id = uuid.uuid4().hex
    at = {"client sent": time.time()}
    headers = {"authorization": f"Bearer {token}", "accept": "text/event-stream"}
    body = {"text": text, "client_message_id": message_id}
    url = f"/v1/sessions/{session_id}/messages"
    async with http.stream("POST", url, json=body, headers=headers) as resp:
        at["client response headers"] = time.time()
        resp.raise_for_status()
        event = ""
        async for line in resp.aiter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                if event == "token" and "client first token" not in at:
                    at["client first token"] = time.time()
                if event in ("final", "error"):
                    at["client final"] = time.time()
                    break
    return TurnTimes(session_id, message_id, at)


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def turn_events(turn: TurnTimes, events: list[HistoryEvent]) -> list[HistoryEvent]:
    """The history events of `turn`: from the workflow task that accepted its update to
    the update's completion (turns of one session never overlap: they run in order)."""
    accepted = next(
        (
            i
            for i, e in enumerate(events)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            and e.workflow_execution_update_accepted_event_attributes.protocol_instance_id
            == turn.update_id
        ),
        None,
    )
    if accepted is None:
        return []
    first = accepted
    while first > 0 and events[first].event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        first -= 1
    last = accepted
    while last < len(events) - 1:
        last += 1
        e = events[last]
        if (
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
            and e.workflow_execution_update_completed_event_attributes.meta.update_id
            == turn.update_id
        ):
            break
    return events[first : last + 1]


def place_history(turn: TurnTimes, events: list[HistoryEvent]) -> None:
    """The server's points of `turn`, from its history events."""
    wft = 0
    generation: set[int] = set()  # the scheduled event ids of the turn's generation
    for event in events:
        when = _seconds(event)
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name in GENERATION:
                generation.add(event.event_id)
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and wft == 0:
            turn.at.setdefault("update received (WFT scheduled)", when)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            wft += 1
            if wft <= 2:
                turn.at.setdefault(f"WFT {wft} started", when)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and wft in (1, 2):
            label = "WFT 1 completed (accepted)" if wft == 1 else "WFT 2 completed"
            turn.at.setdefault(label, when)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes.scheduled_event_id
            if started in generation:
                turn.at.setdefault("activity started", when)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = event.activity_task_completed_event_attributes.scheduled_event_id
            if completed in generation:
                turn.at.setdefault("activity completed", when)


async def place_stream(turn: TurnTimes, redis: Redis) -> None:
    """The worker's points in the turn's Redis stream: first token and final event."""
    entries: Any = await redis.xrange(stream_key(turn.turn_id))
    for entry_id, fields in entries:
        ms = int(str(entry_id).split("-", 1)[0]) / 1000
        if fields.get("type") == "token":
            turn.at.setdefault("first token in Redis", ms)
        elif fields.get("type") in ("final", "error"):
            turn.at.setdefault("final in Redis", ms)


def summarize(turns: list[TurnTimes]) -> list[dict[str, Any]]:
    """Per point: turns that had it, the median ms since the client's send, and the gap
    from the previous point (medians of per-turn gaps, so one slow turn moves neither)."""
    rows: list[dict[str, Any]] = []
    previous: str | None = None
    for point in POINTS:
        have = [t for t in turns if point in t.at]
        if not have:
            continue
        since = [1000 * (t.at[point] - t.at["client sent"]) for t in have]
        gaps = (
            [1000 * (t.at[point] - t.at[previous]) for t in have if previous in t.at]
            if previous
            else []
        )
        rows.append(
            {
                "point": point,
                "turns": len(have),
                "ms_since_send_p50": statistics.median(since),
                "gap_ms_p50": statistics.median(gaps) if gaps else None,
            }
        )
        previous = point
    return rows


async def measure_timeline(
    *,
    gateway_url: str,
    temporal_address: str,
    namespace: str,
    redis_url: str,
    jwt_secret: str,
    sessions: int = 1,
    turns: int = 20,
) -> dict[str, Any]:
    """`turns` turns one after another from each of `sessions` users at once, in sessions
    of SESSION_TURNS: short enough that no turn retrieves older messages or folds them
    into the summary, so each shows the plain path. The first turn of every session
    (which starts its workflow) is sent but left out of the figures."""
    client = await Client.connect(temporal_address, namespace=namespace)
    redis = Redis.from_url(redis_url, decode_responses=True)
    measured: list[TurnTimes] = []
    try:
        async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as http:

            async def talk(index: int) -> list[TurnTimes]:
                user = f"timeline-{uuid.uuid4().hex[:8]}-{index}"
                token = mint_token(jwt_secret, user)
                auth = {"authorization": f"Bearer {token}"}
                mine: list[TurnTimes] = []
                while len(mine) < turns:
                    resp = await http.post("/v1/sessions", json={}, headers=auth)
                    resp.raise_for_status()
                    session_id = str(resp.json()["id"])
                    await _send(http, session_id, "hello", token)  # starts the workflow
                    for n in range(min(SESSION_TURNS, turns - len(mine))):
                        mine.append(await _send(http, session_id, f"hello number {n}", token))
                return mine

            for mine in await asyncio.gather(*(talk(i) for i in range(sessions))):
                measured += mine
        histories: dict[str, list[HistoryEvent]] = {}
        for turn in measured:
            if turn.session_id not in histories:
                handle = client.get_workflow_handle(workflow_id(turn.session_id))
                histories[turn.session_id] = list((await handle.fetch_history()).events)
            events = turn_events(turn, histories[turn.session_id])
            place_history(turn, events)
            await place_stream(turn, redis)
    finally:
        await redis.aclose()
    return {
        "sessions": sessions,
        "turns": len(measured),
        "points": summarize(measured),
    }
