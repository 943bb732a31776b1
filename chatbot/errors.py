"""The gateway's errors. Services raise these; one handler turns each into a JSON body
`{"error": {"code", "message"}}` with its status code, so nothing leaks a stack trace.

    ApiError
    ├── BadRequest (400)        ├── PayloadTooLarge (413)
    ├── Unauthorized (401)      ├── Unprocessable (422)
    ├── Forbidden (403)         ├── RateLimited (429, Retry-After)
    │                           │   └── OverBudget (429, Retry-After, details)
    ├── NotFound (404)          ├── UpstreamFailed (502)
    ├── Conflict (409)          └── Unavailable (503, Retry-After)
    │   └── SessionLimitReached (409)   └── ProviderDown (503, a breaker open)
"""

from __future__ import annotations

import logging
from http import HTTPStatus

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from chatbot.metrics import ERRORS
from shared.redis import REDIS_UNAVAILABLE

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.details = details  # machine-readable specifics, in the body beside the message


class BadRequest(ApiError):
    status, code = HTTPStatus.BAD_REQUEST, "bad_request"


class Unauthorized(ApiError):
    status, code = HTTPStatus.UNAUTHORIZED, "unauthorized"


class Forbidden(ApiError):
    status, code = HTTPStatus.FORBIDDEN, "forbidden"


class NotFound(ApiError):
    status, code = HTTPStatus.NOT_FOUND, "not_found"


class Conflict(ApiError):
    status, code = HTTPStatus.CONFLICT, "conflict"


class SessionBusy(Conflict):
    """A message sent with on_busy=reject while a turn runs (details: running_turn_id)."""

    code = "session_busy"


class SessionLimitReached(Conflict):
    code = "session_limit_reached"


class PayloadTooLarge(ApiError):
    status, code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large"


class Unprocessable(ApiError):
    status, code = HTTPStatus.UNPROCESSABLE_ENTITY, "invalid_request"


class RateLimited(ApiError):
    status, code = HTTPStatus.TOO_MANY_REQUESTS, "rate_limited"


class OverBudget(RateLimited):
    """The user's budget is used up: the body says which, what was used, when it resets."""

    code = "budget_exceeded"


class UpstreamFailed(ApiError):
    status, code = HTTPStatus.BAD_GATEWAY, "upstream_failed"


class Unavailable(ApiError):
    status, code = HTTPStatus.SERVICE_UNAVAILABLE, "unavailable"


class ProviderDown(Unavailable):
    """A provider's circuit breaker is open: the turn failed at once, not after retries."""

    code = "provider_unavailable"


# Postgres refusing or dropping connections: restarting, shutting down, starting up.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


def database_unreachable(err: DBAPIError) -> bool:
    """The database is away, not the query wrong: a connection was invalidated, or one
    could not be made. A new connection made while Postgres restarts fails with asyncpg's
    "connection was closed in the middle of operation" (its cause a reset socket), which
    SQLAlchemy neither marks invalidated nor wraps as an OSError."""
    if err.connection_invalidated:
        return True
    seen: BaseException | None = err.orig
    for _ in range(8):  # the cause chain, bounded
        if seen is None:
            return False
        if isinstance(seen, _CONNECTION_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def _response(err: ApiError) -> JSONResponse:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    if err.status == HTTPStatus.UNAUTHORIZED:
        headers["WWW-Authenticate"] = "Bearer"
    extra = {"details": err.details} if err.details else {}
    return JSONResponse(error_body(err.code, err.message, **extra), err.status, headers=headers)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path, as RFC 9110 wants in `Allow`.
    Starlette names only the first route whose path matched, and FastAPI makes one route
    per method, so it would say `POST` alone for /v1/sessions."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        ERRORS.labels(err.code).inc()
        return _response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
        ERRORS.labels("invalid_request").inc()
        problems = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "problem": e["msg"]}
            for e in err.errors()
        ]
        message = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems)
        return JSONResponse(
            error_body("invalid_request", message, details=problems),
            HTTPStatus.UNPROCESSABLE_ENTITY,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:  # the body limit
            return await _api_error(request, PayloadTooLarge(str(err.detail)))
        code = HTTPStatus(err.status_code).phrase.lower().replace(" ", "_")
        headers = dict(err.headers or {})
        if err.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        return JSONResponse(error_body(code, str(err.detail)), err.status_code, headers=headers)

    @app.exception_handler(SqlTimeoutError)
    async def _pool_exhausted(request: Request, err: SqlTimeoutError) -> JSONResponse:
        # Every pooled connection is busy: answer now instead of making callers hang.
        return await _api_error(
            request, Unavailable("the service is at capacity; retry shortly", retry_after=2)
        )

    @app.exception_handler(DBAPIError)
    async def _database_down(request: Request, err: DBAPIError) -> JSONResponse:
        if not database_unreachable(err):
            return await _unexpected(request, err)
        return await _api_error(request, Unavailable("the database is unreachable", retry_after=5))

    async def _redis_down(request: Request, err: Exception) -> JSONResponse:
        # Rate limits, stream owners and token streams live in Redis: without it a new
        # message is refused (never let through unlimited), and the client told to retry.
        log.warning("redis unreachable: %s", err)
        return await _api_error(
            request, Unavailable("a backing service is unreachable; retry shortly", retry_after=2)
        )

    for kind in REDIS_UNAVAILABLE:
        app.add_exception_handler(kind, _redis_down)

    @app.exception_handler(OSError)
    async def _unreachable(request: Request, err: OSError) -> JSONResponse:
        log.warning("dependency unreachable: %s", err)
        return await _api_error(
            request, Unavailable("a backing service is unreachable; retry shortly", retry_after=5)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        ERRORS.labels("internal_error").inc()
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(
            error_body("internal_error", "something went wrong on our side; it was logged"),
            HTTPStatus.INTERNAL_SERVER_ERROR,
        )
