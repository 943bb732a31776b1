"""What every response carries at the gateway's edge: `nosniff`, `no-store` on API data,
`Allow` on 405, CORS only for configured origins, and bearer auth that still answers in
our own error format (and not at all in dev mode)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.worker import Worker

from chatbot.app import create_app
from shared.config import Settings, load_settings
from tests.chatbot.api_support import auth
from tests.support import free_port

SECRET = "edge-secret-" + "x" * 32


def _settings(**overrides: object) -> Settings:
    # Nothing listens on these ports: the routes under test never reach a dependency, and
    # the clients connect lazily.
    return load_settings(
        database_url=f"postgresql://u@127.0.0.1:{free_port()}/db",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        **overrides,
    )


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(_settings(jwt_secret=SECRET)):
        yield c


async def test_api_responses_are_nosniff_and_not_stored(client: httpx.AsyncClient) -> None:
    token = auth(_settings(jwt_secret=SECRET), "erin")
    for resp in (
        await client.get("/v1/me", headers=token),  # 200
        await client.get("/v1/me"),  # 401 from the auth dependency
        await client.get("/v1/nowhere", headers=token),  # 404 from routing
        await client.post("/v1/sessions", content=b"{", headers=token),  # 422
    ):
        assert resp.headers["x-content-type-options"] == "nosniff", resp.request.url
        assert resp.headers["cache-control"] == "no-store", resp.request.url


async def test_page_assets_stay_cacheable_and_docs_are_nosniff(client: httpx.AsyncClient) -> None:
    page = await client.get("/static/app.css")
    assert page.headers["cache-control"] == "no-cache"  # revalidated with its ETag
    assert page.headers["x-content-type-options"] == "nosniff"
    doc = await client.get("/openapi.json")
    assert doc.headers["x-content-type-options"] == "nosniff"


async def test_405_says_which_methods_are_allowed(client: httpx.AsyncClient) -> None:
    resp = await client.request("TRACE", "/v1/me")
    assert resp.status_code == 405
    assert resp.headers["allow"] == "GET"
    assert resp.json()["error"]["code"] == "method_not_allowed"
    sessions = await client.put("/v1/sessions")
    assert sessions.status_code == 405
    assert set(sessions.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_bearer_auth_errors_stay_our_json_with_www_authenticate(
    client: httpx.AsyncClient,
) -> None:
    for headers, fragment in (
        ({}, "missing bearer token"),
        ({"Authorization": "Basic abc"}, "of the form 'Bearer <token>'"),
        ({"Authorization": "Bearer not-a-jwt"}, "not valid for this service"),
    ):
        resp = await client.get("/v1/me", headers=headers)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == "Bearer"
        error = resp.json()["error"]
        assert error["code"] == "unauthorized" and fragment in error["message"], error


async def test_dev_mode_needs_no_token() -> None:
    async for client in _client(_settings()):
        resp = await client.get("/v1/me")
        # Every role: the console works on a laptop as the page does.
        assert resp.json() == {
            "user_id": "local",
            "dev_mode": True,
            "roles": ["admin", "agent", "user"],
        }


ORIGIN = "https://chat.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


async def test_cors_answers_configured_origins_only() -> None:
    settings = _settings(jwt_secret=SECRET, cors_allow_origins=f"{ORIGIN}, https://other.example")
    assert settings.cors_allow_origins == [ORIGIN, "https://other.example"]
    async for client in _client(settings):
        allowed = await client.options("/v1/sessions", headers={"Origin": ORIGIN, **PREFLIGHT})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        evil = {"Origin": "https://evil.example", **PREFLIGHT}
        refused = await client.options("/v1/sessions", headers=evil)
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        # A real request from an allowed origin can read the ids a client needs.
        me = await client.get("/v1/me", headers={"Origin": ORIGIN, **auth(settings, "erin")})
        assert me.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in me.headers["access-control-expose-headers"].lower()


async def test_no_cors_headers_at_all_by_default(client: httpx.AsyncClient) -> None:
    preflight = await client.options("/v1/sessions", headers={"Origin": ORIGIN, **PREFLIGHT})
    assert preflight.status_code == 405
    assert not [h for h in preflight.headers if h.startswith("access-control-")]
    me = await client.get("/v1/me", headers={"Origin": ORIGIN})
    assert not [h for h in me.headers if h.startswith("access-control-")]


async def test_sse_keeps_no_cache_and_is_nosniff(worker: Worker, alice: httpx.AsyncClient) -> None:
    async with alice.stream(
        "POST",
        "/sessions/edge-sse/messages",
        json={"text": "hello"},
        headers={"Accept": "text/event-stream"},
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["cache-control"] == "no-cache"
        assert resp.headers["x-content-type-options"] == "nosniff"
        async for _ in resp.aiter_lines():
            pass  # read to the end, so the turn is over before the fixtures stop
