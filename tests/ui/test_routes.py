"""The gateway serves the page and its files, and `GET /v1/me` tells a client who it is."""

from __future__ import annotations

import httpx

from shared.config import Settings
from tests.chatbot.api_support import auth


async def test_the_page_and_its_modules_are_served_with_a_strict_policy(gateway: str) -> None:
    async with httpx.AsyncClient(base_url=gateway) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="/static/app.js">' in page.text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        script = await client.get("/static/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        css = await client.get("/static/app.css")
        assert css.headers["content-type"].startswith("text/css")
        for bad in ("/static/nope.js", "/static/..%2Fapp.py", "/static/.hidden.js"):
            missing = await client.get(bad)
            assert missing.status_code == 404, bad
            assert missing.json()["error"]["code"] == "not_found"


async def test_me_says_who_the_caller_is_and_whether_the_gateway_is_in_dev_mode(
    gateway: str, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=f"{gateway}/v1") as client:
        anonymous = await client.get("/me")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        alice = await client.get("/me", headers=auth(settings, "alice"))
        assert alice.json() == {"user_id": "alice", "dev_mode": False, "roles": ["user"]}
        settings.jwt_secret = None  # the gateway reads it per request
        local = await client.get("/me")
        assert local.json() == {
            "user_id": "local",
            "dev_mode": True,
            "roles": ["admin", "agent", "user"],
        }
