"""Handing a session to a person. The user asks for one (`POST /sessions/{id}/handoff`);
agents see the queue, claim a session (the first claim wins, the second is 409 naming
who has it), read its transcript, write to its user, and hand it back to the bot or close
it. Every agent route needs the agent role (admins have it too)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import text

from chatbot import repository
from chatbot.auth import AgentPrincipal, CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.errors import Conflict, NotFound, Unavailable
from chatbot.relay import interrupted
from chatbot.resources import Resources
from chatbot.routes.turns import stream_position
from chatbot.schemas import MessagePage, Seq, SessionId, StreamId, error_responses
from chatbot.sse import KEEPALIVE, sse_frame
from chatbot.turns import Turns
from shared.models import (
    HANDOFF_REASON_CHARS,
    MAX_MESSAGE_CHARS,
    AgentReply,
    Handoff,
    ReleaseHandoff,
    RequestHandoff,
    StorableText,
    TurnResult,
)
from shared.redis import REDIS_UNAVAILABLE, stream_block_ms
from shared.streams import SessionFeed, StreamEvent

router = APIRouter(tags=["handoff"], dependencies=[LogIds])
# A feed's response ends after this long (the client resumes with Last-Event-ID), so an
# open page never holds a connection and a stream slot for good.
FEED_MAX_SECONDS = 300


class HandoffAsk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: StorableText = Field("", max_length=HANDOFF_REASON_CHARS)


class QueuedSession(BaseModel):
    session_id: str
    user_id: str
    title: str | None
    handoff: Handoff
    last_activity_at: datetime | None


class HandoffQueue(BaseModel):
    items: list[QueuedSession] = Field(description="Waiting ones first, oldest request first")


class AgentMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StorableText = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    client_message_id: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["bot", "closed"] = Field(
        "bot", description="bot: the assistant answers again; closed: the session ends"
    )


@router.post(
    "/sessions/{session_id}/handoff", responses=error_responses(400, 401, 404, 409, 422, 503)
)
async def ask_for_a_person(
    session_id: SessionId, body: HandoffAsk, user: CurrentUser, res: ResourcesDep
) -> Handoff:
    """Hand the session to a person: the assistant stops answering, and the session waits
    in the agents' queue. Asked again, the same handoff."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)  # or 404
    request = RequestHandoff(source="user", reason=body.reason, requested_by=user)
    return await Turns(await res.temporal(), res.settings).request_handoff(
        session_id=session_id, user_id=user, request=request
    )


class TicketAsk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: StorableText = Field("", max_length=2000, description="Anything to add for the team")


class TicketOpened(BaseModel):
    ticket_id: int
    title: str


_OPEN_TICKET = text(
    """
    WITH opened AS (
        INSERT INTO tickets (idempotency_key, session_id, user_id, title, description)
        VALUES (:key, :s, :u, :title, :description)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, title
    )
    SELECT id, title FROM opened
    UNION ALL
    SELECT id, title FROM tickets WHERE idempotency_key = :key
    """
)


@router.post(
    "/sessions/{session_id}/handoff/ticket",
    responses=error_responses(400, 401, 404, 409, 422, 503),
)
async def leave_a_ticket(
    session_id: SessionId, body: TicketAsk, user: CurrentUser, res: ResourcesDep
) -> TicketOpened:
    """While waiting for a person (offered once nobody claimed the chat in HANDOFF_SLA):
    leave it as a ticket for the team, with the handoff's reason and the user's note. One
    ticket per handoff, however often this is sent; the chat stays in the queue."""
    session = await repository.get_session(res.engine, session_id=session_id, user_id=user)
    handoff = session.get("handoff")
    if not handoff:
        raise Conflict("the chat is not waiting for a person; ask for one first")
    reason = str(handoff.get("reason") or "").strip()
    description = "\n\n".join(x for x in (f"Reason: {reason}" if reason else "", body.note) if x)
    async with res.engine.begin() as conn:
        row = (
            await conn.execute(
                _OPEN_TICKET,
                {
                    "key": f"handoff:{session_id}:{handoff.get('requested_at')}"[:200],
                    "s": session_id,
                    "u": user,
                    "title": f"Chat {session_id} waits for a person"[:200],
                    "description": description or "The user left the chat as a ticket.",
                },
            )
        ).first()
    assert row is not None
    return TicketOpened(ticket_id=int(row.id), title=str(row.title))


@router.get(
    "/sessions/{session_id}/feed",
    responses={
        **error_responses(400, 401, 404, 422, 429, 503),
        200: {"content": {"text/event-stream": {}}},
    },
)
async def session_feed(
    session_id: SessionId,
    user: CurrentUser,
    res: ResourcesDep,
    last_event_id: Annotated[
        StreamId | SkipJsonSchema[None],
        Header(description="The `id` of the last event received, to resume after it"),
    ] = None,
    since: Annotated[
        Literal["start", "now"],
        Query(description="Without Last-Event-ID: the feed's start (a day of it), or now"),
    ] = "start",
) -> StreamingResponse:
    """What reaches the user outside their own turns, as SSE: `handoff` (the session's
    handoff now, or null when the assistant answers again) and `agent_message` (a person
    from the team wrote: turn_id, text, agent_id). After Last-Event-ID, else from `since`
    (`now` starts with a `handoff` event of the state as it stands); the response ends
    after FEED_MAX_SECONDS, to be resumed."""
    after = stream_position(last_event_id)
    session = await repository.get_session(res.engine, session_id=session_id, user_id=user)
    # A fresh connection from now starts with the handoff as it stands (no id: not a feed
    # entry), so nothing between reading the session and connecting is missed.
    first = None
    if last_event_id is None and since == "now":
        first = StreamEvent("", "handoff", {"handoff": session.get("handoff")})
        try:
            after = await SessionFeed(res.redis).last_id(session_id)
        except REDIS_UNAVAILABLE as err:
            raise Unavailable(
                "the session's feed is unreachable; retry shortly", retry_after=2
            ) from err
    res.slots.check(user)
    return StreamingResponse(
        _feed_frames(res, user, session_id, after, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _feed_frames(
    res: Resources, user: str, session_id: str, after: str, first: StreamEvent | None
) -> AsyncIterator[str]:
    with res.slots.hold(user, enforce=False):
        yield "retry: 1000\n\n"
        if first is not None:
            yield sse_frame(first)
        until = time.monotonic() + FEED_MAX_SECONDS
        feed = SessionFeed(res.stream_redis)
        try:
            async for event in feed.read(session_id, after, block_ms=stream_block_ms(res.settings)):
                yield KEEPALIVE if event is None else sse_frame(event)
                if time.monotonic() > until:
                    return
        except REDIS_UNAVAILABLE as err:
            yield sse_frame(interrupted(f"Redis is unavailable: {type(err).__name__}"))


@router.get("/handoffs", responses=error_responses(401, 403, 503))
async def handoff_queue(agent: AgentPrincipal, res: ResourcesDep) -> HandoffQueue:
    """The sessions handed to a person: waiting ones first (oldest first), then claimed."""
    async with res.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT id AS session_id, user_id, title, handoff, last_activity_at "
                    "FROM sessions WHERE handoff IS NOT NULL ORDER BY "
                    "(handoff->>'state') = 'claimed', handoff->>'requested_at' LIMIT 500"
                )
            )
        ).mappings()
        return HandoffQueue(items=[QueuedSession.model_validate(dict(r)) for r in rows])


async def _handed_off(res: Any, session_id: str) -> dict[str, Any]:
    """The session, whoever owns it; 404 when it does not exist."""
    async with res.engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    text("SELECT id, user_id, handoff FROM sessions WHERE id = :id"),
                    {"id": session_id},
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound(f"session {session_id} not found")
    return dict(row)


@router.post(
    "/handoffs/{session_id}/claim", responses=error_responses(401, 403, 404, 409, 422, 503)
)
async def claim(session_id: SessionId, agent: AgentPrincipal, res: ResourcesDep) -> Handoff:
    """Take the session: 409 when another agent claimed it first (the message names them)."""
    await _handed_off(res, session_id)
    return await Turns(await res.temporal(), res.settings).claim_handoff(
        session_id=session_id, agent_id=agent.user_id
    )


@router.get("/handoffs/{session_id}/messages", responses=error_responses(401, 403, 404, 422, 503))
async def transcript(
    session_id: SessionId,
    agent: AgentPrincipal,
    res: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[Seq | SkipJsonSchema[None], Query()] = None,
) -> MessagePage:
    """The session's messages, with tool calls and approvals, as its user sees them."""
    await _handed_off(res, session_id)
    rows, next_before = await repository.list_messages(
        res.engine, session_id=session_id, limit=limit, before=before
    )
    return MessagePage.model_validate({"items": rows, "next_before": next_before})


@router.post(
    "/handoffs/{session_id}/messages",
    responses=error_responses(400, 401, 403, 404, 409, 422, 503),
)
async def write_to_the_user(
    session_id: SessionId, body: AgentMessage, agent: AgentPrincipal, res: ResourcesDep
) -> TurnResult:
    """A message to the session's user, as the agent who claimed it (409 otherwise); it
    reaches them as a turn of its own, stored with role agent."""
    await _handed_off(res, session_id)
    reply = AgentReply(
        agent_id=agent.user_id, text=body.text, client_message_id=body.client_message_id
    )
    return await Turns(await res.temporal(), res.settings).agent_reply(
        session_id=session_id, reply=reply
    )


@router.post(
    "/handoffs/{session_id}/release",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 401, 403, 404, 409, 422, 503),
)
async def release(
    session_id: SessionId, body: Release, agent: AgentPrincipal, res: ResourcesDep
) -> Response:
    """Done: back to the assistant (`bot`) or the session closed (`closed`)."""
    await _handed_off(res, session_id)
    await Turns(await res.temporal(), res.settings).release_handoff(
        session_id=session_id,
        release=ReleaseHandoff(agent_id=agent.user_id, outcome=body.outcome),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
