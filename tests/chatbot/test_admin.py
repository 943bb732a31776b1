"""The admins' overview through the public API on the real stack: sessions by status and
handed to a person, usage by user today with their budget, failed turns by kind, the
escalation rate and the breakers; agents and users get 403."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.worker import Worker

from chatbot.auth import Role
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import auth

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"budget_tokens_per_day": 100_000})


def client(gateway: str, settings: Settings, user: str, *roles: Role) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, user, *roles), timeout=60
    )


async def test_the_overview_counts_what_happened(
    worker: Worker,
    gateway: str,
    settings: Settings,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    calm, handed, broken = (f"ad-{uuid.uuid4().hex[:6]}" for _ in range(3))
    assert (
        await alice.post(f"/sessions/{calm}/messages", json={"text": "hello"})
    ).status_code == 200
    await alice.post(f"/sessions/{handed}/messages", json={"text": "hi"})
    await alice.post(f"/sessions/{handed}/handoff", json={"reason": "refund"})
    llm.script({"endpoint": "chat", "stream": True, "status": 400, "message": "bad request"})
    failed = await alice.post(f"/sessions/{broken}/messages", json={"text": "how are you"})
    assert failed.status_code == 502

    async with client(gateway, settings, "root", "admin") as admin:
        got = (await admin.get("/admin/overview", params={"days": 1})).json()
    assert got["sessions_by_status"] == {"active": 3}
    assert got["handoffs"] == {"waiting": 1}
    (usage,) = got["usage_today"]
    assert usage["user_id"] == "alice" and usage["tokens"] > 0 and usage["limit_tokens"] == 100_000
    (error,) = got["errors"]
    assert error["kind"] == "the model provider rejected the request" and error["turns"] == 1
    assert got["escalations"] == {"sessions": 3, "escalated": 1, "rate": round(1 / 3, 4)}
    assert {b["provider"] for b in got["breakers"]} >= {"llm", "web_search"}
    assert all(b["state"] == "closed" for b in got["breakers"])


async def test_only_admins_see_it(worker: Worker, gateway: str, settings: Settings) -> None:
    for roles in ((), ("agent",)):
        async with client(gateway, settings, "someone", *roles) as caller:
            resp = await caller.get("/admin/overview")
        assert resp.status_code == 403
        assert "needs the admin role" in resp.json()["error"]["message"]
