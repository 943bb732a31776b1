"""WebSocket for interactive clients: the same turns as JSON frames.

Client -> server: `{"type": "message", "text", "client_message_id"?}` and
`{"type": "cancel", "turn_id"}`. Server -> client: `accepted`, `token`, `restart`,
`final`, `error` frames, each with the turn id (and the stream event id)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any, cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from chatbot import repository
from chatbot.auth import authenticate, bearer_token
from chatbot.errors import ApiError
from chatbot.ratelimit import enforce
from chatbot.resources import Resources
from chatbot.schemas import SESSION_ID_PATTERN
from chatbot.sse import ws_frame
from chatbot.turns import Turns
from shared.models import SendMessage
from shared.streams import TurnStreams

router = APIRouter(tags=["messages"])
POLICY_VIOLATION = 1008


def _error(message: str, code: str, turn_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "turn_id": turn_id}


@router.websocket("/sessions/{session_id}/ws")
async def session_socket(websocket: WebSocket, session_id: str) -> None:
    res = cast(Resources, websocket.app.state.resources)
    secret = res.settings.jwt_secret
    try:
        if not re.match(SESSION_ID_PATTERN, session_id):
            raise ApiError("session id is not valid")
        token = websocket.query_params.get("token") or bearer_token(
            websocket.headers.get("authorization")
        )
        user = authenticate(secret.get_secret_value() if secret else None, token)
        await repository.get_session(res.engine, session_id=session_id, user_id=user)
    except ApiError as err:
        await websocket.close(code=POLICY_VIOLATION, reason=err.message[:120])
        return
    await websocket.accept()
    streams = TurnStreams(res.redis)
    relays: set[asyncio.Task[None]] = set()

    async def relay(turn_id: str) -> None:
        async for event in streams.read(turn_id):
            if event is not None:
                await websocket.send_json(ws_frame(turn_id, event))

    try:
        while True:
            frame = await websocket.receive_json()
            try:
                await _handle(frame, websocket, res, streams, session_id, user, relays, relay)
            except ApiError as err:
                await websocket.send_json(_error(err.message, err.code))
    except WebSocketDisconnect:
        pass
    finally:
        for task in relays:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*relays, return_exceptions=True)


async def _handle(
    frame: Any,
    websocket: WebSocket,
    res: Resources,
    streams: TurnStreams,
    session_id: str,
    user: str,
    relays: set[asyncio.Task[None]],
    relay: Any,
) -> None:
    kind = frame.get("type") if isinstance(frame, dict) else None
    turns = Turns(await res.temporal(), res.settings)
    if kind == "message":
        try:
            msg = SendMessage.model_validate({k: v for k, v in frame.items() if k != "type"})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            await websocket.send_json(_error(problems, "invalid_request"))
            return
        await enforce(res.redis, user, limit_per_minute=res.settings.rate_limit_per_minute)
        turn_id, _ = await turns.send(session_id=session_id, user_id=user, message=msg)
        await streams.set_owner(turn_id, session_id, user)
        await websocket.send_json({"type": "accepted", "turn_id": turn_id})
        task = asyncio.create_task(relay(turn_id))
        relays.add(task)
        task.add_done_callback(relays.discard)
    elif kind == "cancel" and isinstance(frame.get("turn_id"), str):
        await turns.cancel(session_id=session_id, turn_id=frame["turn_id"])
    else:
        await websocket.send_json(
            _error(
                "send {'type': 'message', 'text': ...} or {'type': 'cancel', 'turn_id': ...}",
                "invalid_request",
            )
        )
