"""Bearer JWT authentication: HS256 tokens signed with JWT_SECRET (`chatbot token`), and
RS256/ES256 tokens of an OIDC provider (OIDC_ISSUER, `oidc.py`); either or both. With
neither the gateway runs in dev mode: every request is the fixed local user, with every
role, and start-up says so.

A caller is a Principal: the user and their roles. Everyone signed in is a `user`;
`agent` and `admin` come from the token (an HS256 token's `roles` claim, the OIDC roles
claim). An admin may do what an agent may.

FastAPI's `HTTPBearer` is here for the OpenAPI document (a `securitySchemes` entry and
`security` on each route that depends on it); with `auto_error=False` it never answers
itself, so errors stay our JSON 401 with `WWW-Authenticate`, and dev mode needs no header."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from chatbot.deps import ResourcesDep
from chatbot.errors import Forbidden, Unauthorized
from chatbot.oidc import ALGORITHMS as OIDC_ALGORITHMS
from chatbot.oidc import OidcVerifier
from shared.models import storable_problem

DEV_USER = "local"
ALGORITHM = "HS256"
DEFAULT_TTL_SECONDS = 30 * 24 * 3600
Role = Literal["user", "agent", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: frozenset[str] = frozenset({"user"})

    def has(self, role: Role) -> bool:
        return role in self.roles or (role == "agent" and "admin" in self.roles)


DEV_PRINCIPAL = Principal(DEV_USER, frozenset(ROLES))


def mint_token(
    secret: str,
    user_id: str,
    *,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    roles: Iterable[Role] = (),
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if extra := sorted(set(roles) - {"user"}):
        claims["roles"] = extra
    return jwt.encode(claims, secret, ALGORITHM)


def principal_from_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; get a new one") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid for this service") from None
    raw = claims.get("roles")
    roles = {r for r in raw if r in ROLES} if isinstance(raw, list) else set()
    return Principal(_user(claims.get("sub"), "sub"), frozenset({"user", *roles}))


def user_from_token(secret: str, token: str) -> str:
    return principal_from_token(secret, token).user_id


def _user(value: object, claim: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256 or storable_problem(value):
        raise Unauthorized(f"the token has no usable user ({claim}) claim")
    return value


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("use an Authorization header of the form 'Bearer <token>'")
    return token.strip()


async def authenticate(
    secret: str | None, oidc: OidcVerifier | None, token: str | None
) -> Principal:
    """The caller of `token`: HS256 ones are checked with `secret`, RS256/ES256 ones with
    the OIDC issuer's keys, each only where configured. Neither configured: dev mode."""
    if secret is None and oidc is None:
        return DEV_PRINCIPAL
    if token is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError:
        raise Unauthorized("the token is not valid for this service") from None
    # The header only picks the verifier; each verifier allows its own algorithms alone.
    if alg == ALGORITHM and secret is not None:
        return principal_from_token(secret, token)
    if alg in OIDC_ALGORITHMS and oidc is not None:
        user, roles = await oidc.verify(token)
        return Principal(_user(user, "user"), roles)
    accepted = ([ALGORITHM] if secret else []) + (list(OIDC_ALGORITHMS) if oidc else [])
    raise Unauthorized(f"the token must be signed with {' or '.join(accepted)}")


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="BearerJWT",
    bearerFormat="JWT",
    description="An HS256 JWT with the user in `sub` (`chatbot token USER` mints one), or "
    "an RS256/ES256 token of the OIDC provider the gateway trusts (OIDC_ISSUER). A gateway "
    "with neither (dev mode) needs none.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def _token(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is not None:
        return credentials.credentials
    # HTTPBearer gives None for a malformed header too; say what the header should be.
    return bearer_token(request.headers.get("authorization"))


async def current_principal(
    request: Request, resources: ResourcesDep, credentials: Credentials
) -> Principal:
    secret = resources.settings.jwt_secret
    token = _token(request, credentials)
    return await authenticate(secret.get_secret_value() if secret else None, resources.oidc, token)


async def current_user(principal: Annotated[Principal, Depends(current_principal)]) -> str:
    return principal.user_id


async def optional_user(
    request: Request, resources: ResourcesDep, credentials: Credentials
) -> str | None:
    """The caller when they authenticate (always, in dev mode), else None: for routes that
    answer anyone and tell an authenticated caller more."""
    try:
        return (await current_principal(request, resources, credentials)).user_id
    except Unauthorized:
        return None


def require(role: Role) -> object:
    """A dependency: the caller, who must have `role` (403 otherwise, saying which)."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.has(role):
            raise Forbidden(f"this needs the {role} role; {principal.user_id} does not have it")
        return principal

    return Depends(check)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentUser = Annotated[str, Depends(current_user)]
OptionalUser = Annotated[str | None, Depends(optional_user)]
AgentPrincipal = Annotated[Principal, require("agent")]
AdminPrincipal = Annotated[Principal, require("admin")]
