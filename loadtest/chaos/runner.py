"""One chaos run: start the stack, then per fault a phase: N sessions x M messages over
JSON, SSE and WebSocket clients (round robin), the fault injected once the first messages
are accepted (or, for a mid-stream fault, once a stream is running), every message
followed to its end, then Postgres checked row by row."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from chatbot.auth import mint_token
from loadtest.bench import integrity
from loadtest.chaos.clients import WsSession, ensure_session, http_client, send_json, send_sse
from loadtest.chaos.faults import Fault, FaultContext, Window, set_baseline
from loadtest.chaos.record import MessageRecord
from loadtest.chaos.stack import ChaosStack

KINDS = ("json", "sse", "ws")
TRIGGER_DEADLINE = 60.0
SETTLE_DEADLINE = 60.0  # acknowledged turns still being stored when their clients are done


@dataclass
class Phase:
    fault: Fault
    sessions: int
    messages: int
    records: list[MessageRecord] = field(default_factory=list)
    window: Window | None = None
    check: integrity.RowCheck = field(default_factory=integrity.RowCheck)
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)


def message_text(topic: str, session: int, n: int, cmid: str) -> str:
    if topic == "company":
        return f"Find a CNC machining company in Ohio [{cmid}]"
    return f"Hello there, tell me something nice about the number {session * 100 + n} [{cmid}]"


class ChaosRun:
    def __init__(
        self, stack: ChaosStack, *, sessions: int, messages: int, out: Callable[[str], None]
    ) -> None:
        self.stack = stack
        self.sessions = sessions
        self.messages = messages
        self.out = out
        self.prefix = f"chaos-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:6]}"

    async def phase(self, fault: Fault) -> Phase:
        began = time.monotonic()
        phase = Phase(fault, self.sessions, self.messages)
        await asyncio.to_thread(self.stack.wait_healthy)
        await set_baseline(self.stack, fault.tokens_per_second)
        tasks = [
            asyncio.create_task(self._session(fault, i, phase.records))
            for i in range(self.sessions)
        ]
        if not await self._triggered(fault, phase.records):
            phase.notes.append(f"trigger '{fault.trigger}' not seen within {TRIGGER_DEADLINE} s")
        ctx = FaultContext(self.stack, self.sessions, self.out)
        self.out(f"  {fault.name}: injecting ({fault.summary})")
        phase.window = await fault.inject(ctx)
        self.out(
            f"  {fault.name}: fault over after {phase.window.ended - phase.window.started:.1f} s"
        )
        await asyncio.gather(*tasks)
        phase.check = await self._settle(fault, phase.records)
        phase.elapsed = time.monotonic() - began
        return phase

    async def _session(self, fault: Fault, i: int, records: list[MessageRecord]) -> None:
        kind = KINDS[i % len(KINDS)]
        sid = f"{self.prefix}.{fault.name}.s{i}"
        token = mint_token(self.stack.jwt_secret, f"chaos-user-{i}")
        async with http_client(self.stack.gateway_url, token) as http:
            ws = WsSession(self.stack.gateway_url, token, sid) if kind == "ws" else None
            try:
                for n in range(self.messages):
                    cmid = f"{fault.name}.s{i}.m{n}.{uuid.uuid4().hex[:6]}"
                    text = message_text(fault.topic, i, n, cmid)
                    rec = MessageRecord(sid, kind, cmid, text)
                    records.append(rec)
                    if ws is not None:
                        if n == 0:
                            await ensure_session(http, sid, rec)
                        await ws.send(rec)
                    elif kind == "sse":
                        await send_sse(http, rec)
                    else:
                        await send_json(http, rec)
            finally:
                if ws is not None:
                    await ws.close()

    async def _triggered(self, fault: Fault, records: list[MessageRecord]) -> bool:
        wanted = max(1, self.sessions // 3)

        def ready() -> bool:
            if fault.trigger == "streaming":
                return any(r.tokens > 0 and not r.done for r in records if r.kind != "json")
            return sum(r.acknowledged for r in records) >= wanted

        deadline = time.monotonic() + TRIGGER_DEADLINE
        while not ready():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _settle(self, fault: Fault, records: list[MessageRecord]) -> integrity.RowCheck:
        """Wait (bounded) until every acknowledged message has its rows, then check all."""
        sent = [
            integrity.Sent(r.session_id, r.client_message_id, r.acknowledged, r.turn_id, r.reply)
            for r in records
        ]
        prefix = f"{self.prefix}.{fault.name}"
        deadline = time.monotonic() + SETTLE_DEADLINE
        while True:
            rows = await integrity.fetch_rows(self.stack.database_url, prefix)
            if integrity.missing(rows, sent) == 0 or time.monotonic() > deadline:
                return integrity.verify(rows, sent)
            await asyncio.sleep(0.5)
