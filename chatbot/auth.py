"""Bearer JWT authentication (HS256 with JWT_SECRET). Without JWT_SECRET the gateway runs
in dev mode: every request is the fixed local user, and start-up says so.

FastAPI's `HTTPBearer` is here for the OpenAPI document (a `securitySchemes` entry and
`security` on each route that depends on it); with `auto_error=False` it never answers
itself, so errors stay our JSON 401 with `WWW-Authenticate`, and dev mode needs no header."""

from __future__ import annotations

import time
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chatbot.deps import ResourcesDep
from chatbot.errors import Unauthorized
from shared.models import storable_problem

DEV_USER = "local"
ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 30 * 24 * 3600


def mint_token(secret: str, user_id: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + ttl_seconds}, secret, ALGORITHM)


def user_from_token(secret: str, token: str) -> str:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; get a new one") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid for this service") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 256 or storable_problem(sub):
        raise Unauthorized("the token has no usable subject (sub) claim")
    return sub


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use an Authorization header of the form 'Bearer <token>'")
    return token.strip()


def authenticate(secret: str | None, token: str | None) -> str:
    if secret is None:
        return DEV_USER
    if token is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return user_from_token(secret, token)


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="BearerJWT",
    bearerFormat="JWT",
    description="An HS256 JWT with the user in `sub` (`chatbot token USER` mints one). "
    "A gateway without JWT_SECRET (dev mode) needs none.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def _token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is not None:
        return credentials.credentials
    # HTTPBearer gives None for a malformed header too; say what the header should be.
    return bearer_token(request.headers.get("authorization"))


async def current_user(request: Request, resources: ResourcesDep, credentials: Credentials) -> str:
    secret = resources.settings.jwt_secret
    token = _token(request, credentials)
    return authenticate(secret.get_secret_value() if secret else None, token)


async def optional_user(
    request: Request, resources: ResourcesDep, credentials: Credentials
) -> str | None:
    """The caller when they authenticate (always, in dev mode), else None: for routes that
    answer anyone and tell an authenticated caller more."""
    try:
        return await current_user(request, resources, credentials)
    except Unauthorized:
        return None


CurrentUser = Annotated[str, Depends(current_user)]
OptionalUser = Annotated[str | None, Depends(optional_user)]
