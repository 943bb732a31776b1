"""What the fakes share: scripted steps (FIFO), error bodies, auth, hangs, the request log."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from loadtest.fakes.runner import ServerThread

ErrorBody = Callable[[int, str | None], dict[str, Any]]
Role = Literal["system", "developer", "user", "assistant", "tool"]


class Citation(BaseModel):
    """A web-search source. Without indices the fake appends a markdown link to the reply."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    title: str
    start_index: int | None = None
    end_index: int | None = None


class ToolCallStep(BaseModel):
    """A function call the fake's chat completion makes. A dict `arguments` is sent
    JSON-encoded; a str is sent verbatim (so a test can send malformed JSON). `id` None
    means the fake makes one up (`call_fake_<n>`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None


class Step(BaseModel):
    """One scripted behaviour, used by the first request it matches (FIFO), `times` times.

    `endpoint`/`model`/`stream`/`tools`/`last_role` narrow which requests match (None =
    any; `tools` True = only requests with a non-empty `tools` list the model may call,
    i.e. not with tool_choice "none"; False = only the others; `last_role` = only chat
    requests whose last message has that role: "user" for a tool-calling turn's first
    round, "tool" for the round carrying the results). A step with a large `times` is a
    rule: concurrent turns each get the one that fits their own request, in step order.
    Then: `hang`, else `status` (an error in the API's own shape, after `latency_ms`),
    else a normal answer shaped by `reply`/`citations`/`tool_calls`/`break_after`/
    `latency_ms`/`tokens_per_second` where they apply. With `tool_calls` the chat
    completion calls those functions (finish_reason "tool_calls"), with `reply` as its
    content if given, else none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    endpoint: str | None = None
    model: str | None = None
    stream: bool | None = None  # streamed (chat replies) or not (summaries, intent)
    tools: bool | None = None  # the request offers tools (function calling) or not
    last_role: Role | None = None  # the role of the request's last message
    reply: str | None = None
    citations: list[Citation] | None = None
    tool_calls: list[ToolCallStep] | None = None
    status: int | None = Field(default=None, ge=400, le=599)
    message: str | None = None
    retry_after: int | None = Field(default=None, ge=0)  # seconds; 429s default to 1
    hang: bool = False
    # Streams: drop after N tokens (text tokens, then each call's header and argument pieces).
    break_after: int | None = Field(default=None, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    tokens_per_second: float | None = Field(default=None, ge=0)
    times: int = Field(default=1, ge=1)


# Error bodies as each real service writes them; a step's `message` replaces the text.
_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_DATABRICKS_ERRORS = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


def openai_error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kind, code, text = _OPENAI_ERRORS.get(status, ("server_error", None, f"HTTP {status}"))
    return {"error": {"message": message or text, "type": kind, "param": None, "code": code}}


def databricks_error_body(status: int, message: str | None = None) -> dict[str, Any]:
    code = _DATABRICKS_ERRORS.get(status, "INTERNAL_ERROR")
    return {"error_code": code, "message": message or f"{code} (from the fake)"}


class FakeServer(ServerThread):
    """Base of the fakes: bearer auth, the step queue, the request log, `/_fake/*` routes."""

    bad_token_status = 401  # what a wrong (not a missing) bearer token gets
    max_recorded = 10_000  # the request log keeps the newest ones: load runs are long

    def __init__(
        self,
        routes: Sequence[BaseRoute],
        error_body: ErrorBody,
        *,
        token: str | None,
        host: str,
        port: int,
    ) -> None:
        control = [
            Route("/_fake/script", self._http_script, methods=["GET", "POST", "DELETE"]),
            Route("/_fake/requests", self._http_requests, methods=["GET", "DELETE"]),
        ]
        super().__init__(Starlette(routes=[*routes, *control]), host=host, port=port)
        self.error_body = error_body
        self.token = token  # None accepts any bearer token
        self._lock = threading.Lock()  # tests script from their thread while the server pops
        self._steps: list[Step] = []
        self._requests: deque[dict[str, Any]] = deque(maxlen=self.max_recorded)

    def script(self, *steps: Step | Mapping[str, Any]) -> None:
        """Queue steps: Step objects, or dicts of Step's fields."""
        parsed = [s if isinstance(s, Step) else Step.model_validate(s) for s in steps]
        with self._lock:
            self._steps.extend(parsed)

    @property
    def pending(self) -> list[Step]:
        with self._lock:
            return list(self._steps)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of every API request seen: {"endpoint", "method", "path", "body"}."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        """Forget pending steps and recorded requests."""
        with self._lock:
            self._steps.clear()
            self._requests.clear()

    def take(
        self,
        endpoint: str,
        model: str | None,
        stream: bool = False,
        has_tools: bool = False,
        last_role: str | None = None,
    ) -> Step | None:
        with self._lock:
            for i, step in enumerate(self._steps):
                if (
                    step.endpoint in (None, endpoint)
                    and step.model in (None, model)
                    and step.stream in (None, stream)
                    and step.tools in (None, has_tools)
                    and step.last_role in (None, last_role)
                ):
                    if step.times > 1:
                        self._steps[i] = step.model_copy(update={"times": step.times - 1})
                    else:
                        del self._steps[i]
                    return step
        return None

    def error(
        self, status: int, message: str | None = None, retry_after: int | None = None
    ) -> Response:
        if status == 429 and retry_after is None:
            retry_after = 1
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return JSONResponse(self.error_body(status, message), status_code=status, headers=headers)

    async def begin(
        self, request: Request, endpoint: str
    ) -> tuple[dict[str, Any], Step | None] | Response:
        """Common prologue: record the body, check the token, then apply the next matching
        step's hang or failure. Returns the body and step, or the response to send."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        with self._lock:
            record = {"endpoint": endpoint, "method": request.method, "path": request.url.path}
            self._requests.append({**record, "body": body})
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self.error(401, "No bearer token was sent.")
        if self.token is not None and token != self.token:
            return self.error(self.bad_token_status, "Invalid access token.")
        if not isinstance(body, dict):
            return self.error(400, "The request body must be a JSON object.")
        step = self.take(
            endpoint,
            body.get("model") if isinstance(body.get("model"), str) else None,
            body.get("stream") is True,
            # Tools offered with tool_choice "none" may not be called: as no tools.
            isinstance(body.get("tools"), list)
            and bool(body["tools"])
            and body.get("tool_choice") != "none",
            _last_role(body.get("messages")),
        )
        if step and step.hang:
            await self._hang(request)
            return self.error(503, "The fake server is shutting down.")
        if step and step.status is not None:
            await self.sleep((step.latency_ms or 0) / 1000)
            return self.error(step.status, step.message, step.retry_after)
        return body, step

    async def _hang(self, request: Request) -> None:
        """Block until the client disconnects or the server stops."""

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        waiters = {asyncio.ensure_future(disconnected()), asyncio.ensure_future(self.sleep(None))}
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def _http_script(self, request: Request) -> Response:
        if request.method == "POST":
            try:  # {"steps": [...]} or a bare list of steps
                payload = json.loads(await request.body() or b"[]")
                self.script(*(payload.get("steps", []) if isinstance(payload, dict) else payload))
            except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
                return JSONResponse({"error": str(exc)}, status_code=400)
        elif request.method == "DELETE":
            with self._lock:
                self._steps.clear()
        return JSONResponse({"pending": [s.model_dump(exclude_none=True) for s in self.pending]})

    async def _http_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.clear_requests()
        return JSONResponse({"requests": self.requests})


def _last_role(messages: object) -> str | None:
    """The role of a chat request's last message (None without one)."""
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        role = messages[-1].get("role")
        return role if isinstance(role, str) else None
    return None
