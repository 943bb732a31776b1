"""WebSocket for interactive clients: the same turns as JSON frames.

Client -> server (text frames, JSON objects): `{"type": "message", "text",
"client_message_id"?, "on_busy"?}`, `{"type": "cancel", "turn_id"}` and `{"type":
"resume", "turn_id", "after"?}` (follow a turn again after a resumable error, from the
last event id seen).
Server -> client: `accepted`, `token`, `restart`, `keepalive`, `final`, `error` frames,
each with the turn id (and the stream event id). A bad frame gets an `error` frame and
the socket stays open; a frame over MAX_REQUEST_BYTES closes it (1009).

Auth: `Authorization: Bearer` where the client can set headers; from a browser, the
subprotocols `chatbot.v1` and `bearer.<token>` (the server selects `chatbot.v1`), so the
token is never part of a URL. `?token=` still works, and is redacted from every log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from chatbot import repository
from chatbot.auth import authenticate, bearer_token
from chatbot.errors import ApiError
from chatbot.relay import record_owner, turn_events
from chatbot.resources import Resources
from chatbot.routes.messages import admit
from chatbot.routes.turns import TURN_ID_PATTERN, owner_id, stream_position
from chatbot.schemas import SESSION_ID_PATTERN
from chatbot.sse import ws_frame
from chatbot.turns import Turns
from shared.models import SendMessage
from shared.redis import REDIS_UNAVAILABLE

router = APIRouter(tags=["messages"])
log = logging.getLogger(__name__)
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
SUBPROTOCOL = "chatbot.v1"
_TOKEN_PROTOCOL = "bearer."
_TURN_ID = re.compile(TURN_ID_PATTERN)
USAGE = (
    "send a JSON object: {'type': 'message', 'text': ...}, {'type': 'cancel', 'turn_id': ...} "
    "or {'type': 'resume', 'turn_id': ..., 'after': ...}"
)


def _error(message: str, code: str, turn_id: str | None = None, **extra: object) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "turn_id": turn_id, **extra}


def _token(websocket: WebSocket) -> str | None:
    for protocol in websocket.scope.get("subprotocols", []):
        if protocol.startswith(_TOKEN_PROTOCOL):
            return str(protocol[len(_TOKEN_PROTOCOL) :])
    return websocket.query_params.get("token") or bearer_token(
        websocket.headers.get("authorization")
    )


class Socket:
    """One client's socket: its frames in, its turns' events out."""

    def __init__(self, websocket: WebSocket, res: Resources, session_id: str, user: str) -> None:
        self.ws, self.res, self.session_id, self.user = websocket, res, session_id, user
        self.relays: set[asyncio.Task[None]] = set()

    async def send(self, frame: dict[str, Any]) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client left
            await self.ws.send_json(frame)

    def follow(self, turn_id: str, after: str = "0-0") -> None:
        task = asyncio.create_task(self._relay(turn_id, after))
        self.relays.add(task)
        task.add_done_callback(self.relays.discard)

    async def _relay(self, turn_id: str, after: str) -> None:
        try:
            async for event in turn_events(self.res, turn_id, after):
                if event is None:
                    await self.send({"type": "keepalive", "turn_id": turn_id})
                else:
                    await self.send(ws_frame(turn_id, event))
        except Exception:  # a relay never dies silently: the client hears of it
            log.exception("websocket relay failed")
            await self.send(
                _error(
                    "the stream failed; resume this turn", "stream_failed", turn_id, resumable=True
                )
            )

    async def handle(self, frame: Any) -> None:
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "message":
            await self._message(frame)
        elif kind == "cancel" and isinstance(frame.get("turn_id"), str):
            turns = Turns(await self.res.temporal(), self.res.settings)
            await turns.cancel(session_id=self.session_id, turn_id=frame["turn_id"])
        elif kind == "resume" and isinstance(frame.get("turn_id"), str):
            await self._resume(frame["turn_id"], frame.get("after"))
        else:
            await self.send(_error(USAGE, "invalid_request"))

    async def _message(self, frame: dict[str, Any]) -> None:
        try:
            msg = SendMessage.model_validate({k: v for k, v in frame.items() if k != "type"})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()
            )
            await self.send(_error(problems, "invalid_request"))
            return
        res = self.res
        await admit(res, self.user)
        if msg.on_busy is None:  # the session's own setting
            session = await repository.get_session(
                res.engine, session_id=self.session_id, user_id=self.user
            )
            msg = msg.model_copy(update={"on_busy": session["on_busy"]})
        turns = Turns(await res.temporal(), res.settings)
        turn_id, _ = await turns.send(session_id=self.session_id, user_id=self.user, message=msg)
        await record_owner(res, turn_id, self.session_id, self.user)
        await self.send({"type": "accepted", "turn_id": turn_id})
        self.follow(turn_id)

    async def _resume(self, turn_id: str, after: Any) -> None:
        if not _TURN_ID.match(turn_id) or not (after is None or isinstance(after, str)):
            await self.send(_error("resume takes a turn_id and an event id", "invalid_request"))
            return
        position = stream_position(after)
        if await owner_id(self.res, turn_id) != self.user:
            await self.send(_error(f"turn {turn_id} not found", "not_found", turn_id))
            return
        self.follow(turn_id, position)

    async def close(self) -> None:
        for task in self.relays:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self.relays, return_exceptions=True)


@dataclass(frozen=True)
class BadFrame:
    problem: str


async def _frames(websocket: WebSocket, limit: int) -> AsyncIterator[Any]:
    """The client's frames, parsed; one that is not JSON text is a BadFrame."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("text")
        if data is None:
            yield BadFrame("send text frames holding JSON; binary frames are not read")
            continue
        if len(data) > limit:
            await websocket.close(MESSAGE_TOO_BIG, f"frames are limited to {limit} bytes")
            return
        try:
            yield json.loads(data)
        except (ValueError, RecursionError):
            yield BadFrame(f"the frame is not valid JSON; {USAGE}")


@router.websocket("/sessions/{session_id}/ws")
async def session_socket(websocket: WebSocket, session_id: str) -> None:
    res = cast(Resources, websocket.app.state.resources)
    secret = res.settings.jwt_secret
    try:
        if not re.match(SESSION_ID_PATTERN, session_id):
            raise ApiError("session id is not valid")
        caller = await authenticate(
            secret.get_secret_value() if secret else None, res.oidc, _token(websocket)
        )
        user = caller.user_id
        # As a first POST does: a session that was never created is created for its user.
        await repository.ensure_session(
            res.engine,
            session_id=session_id,
            user_id=user,
            max_sessions=res.settings.max_sessions_per_user,
        )
        res.slots.check(user)
    except ApiError as err:
        # Accepted, then closed: a close before the handshake is a bare HTTP 403, and the
        # client would never see why.
        await _accept(websocket)
        await websocket.close(code=POLICY_VIOLATION, reason=err.message[:120])
        return
    await _accept(websocket)
    socket = Socket(websocket, res, session_id, user)
    try:
        with res.slots.hold(user, enforce=False):
            async for frame in _frames(websocket, res.settings.max_request_bytes):
                if isinstance(frame, BadFrame):
                    await socket.send(_error(frame.problem, "invalid_request"))
                    continue
                await _handle_safely(socket, frame)
    except WebSocketDisconnect:
        pass
    finally:
        await socket.close()


async def _accept(websocket: WebSocket) -> None:
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)


async def _handle_safely(socket: Socket, frame: Any) -> None:
    """One frame; whatever goes wrong is told to the client, and the socket stays open."""
    try:
        await socket.handle(frame)
    except ApiError as err:
        await socket.send(_error(err.message, err.code, retry_after=err.retry_after))
    except REDIS_UNAVAILABLE:
        await socket.send(
            _error("a backing service is unreachable; retry shortly", "unavailable", retry_after=2)
        )
    except Exception:
        log.exception("websocket frame failed")
        await socket.send(_error("something went wrong on our side; it was logged", "internal"))
