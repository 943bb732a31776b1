"""The web UI: a chat page at `/` (plain HTML, CSS and ES modules from `chatbot/static/`,
no build step) and `GET /v1/me`, which tells a client who it is and whether the gateway
runs in dev mode. The page talks to the public /v1 API only, so it is a reference client."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel

from chatbot.auth import CurrentPrincipal
from chatbot.deps import ResourcesDep
from chatbot.errors import NotFound
from chatbot.schemas import error_responses

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# Flat names only: no path separators, so nothing outside STATIC_DIR can be asked for.
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(html|css|js|svg|png)$")
_MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
}

# Scripts and styles come from this origin only and nothing inline runs, so markup that
# slipped past the page's escaping still could not execute (the page builds its DOM with
# textContent; this is the second line of defence, not the first).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",  # blob: a chart fetched with the bearer token
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (ETag makes that a 304): a deploy is visible on the next load.
    "Cache-Control": "no-cache",
}

page_router = APIRouter(tags=["web UI"], include_in_schema=False)
me_router = APIRouter(tags=["auth"])


class Me(BaseModel):
    user_id: str
    dev_mode: bool
    roles: list[str]


@me_router.get("/me", responses=error_responses(401))
async def me(caller: CurrentPrincipal, res: ResourcesDep) -> Me:
    """The caller as the gateway sees them, with their roles (`user`, and `agent` or
    `admin` where the token grants them); `dev_mode` is true when the gateway has neither
    JWT_SECRET nor OIDC_ISSUER (every request is then the local user, with every role)."""
    dev = res.settings.jwt_secret is None and res.settings.oidc_issuer is None
    return Me(user_id=caller.user_id, dev_mode=dev, roles=sorted(caller.roles))


def _file(name: str) -> FileResponse:
    match = _STATIC_NAME.match(name)
    path = STATIC_DIR / name
    if match is None or not path.is_file():
        raise NotFound(f"no static file {name!r}")
    return FileResponse(path, media_type=_MEDIA_TYPES[match.group(1)], headers=_HEADERS)


@page_router.get("/")
async def index() -> FileResponse:
    return _file("index.html")


@page_router.get("/console")
async def console() -> FileResponse:
    """The operators' console: the handoff queue and its sessions (needs the agent role;
    every action goes through /v1, which checks it)."""
    return _file("console.html")


@page_router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    return _file(name)
