"""The operators' console in the browser, on the real gateway and worker: an agent sees a
session the user handed to a person in the queue, opens its transcript, claims it, writes
to the user (who finds the message in their history, from the agent) and hands it back to
the assistant. A token without the agent role is told the console needs it."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect
from temporalio.worker import Worker

from chatbot.auth import Role, mint_token
from shared.config import Settings
from tests.chatbot.api_support import auth
from tests.ui.support import shot

SCREENSHOT = Path("/tmp/console-claimed.png")


async def sign_in(page: Page, gateway: str, settings: Settings, user: str, *roles: Role) -> None:
    assert settings.jwt_secret is not None
    token = mint_token(settings.jwt_secret.get_secret_value(), user, roles=roles)
    await page.goto(f"{gateway}/console")
    await page.evaluate("t => localStorage.setItem('chatbot.token', t)", token)
    await page.reload()


@pytest.fixture
async def alice(gateway: str, settings: Settings) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{gateway}/v1", headers=auth(settings, "alice"), timeout=60)


async def test_an_agent_claims_writes_and_hands_back_from_the_console(
    page: Page, gateway: str, settings: Settings, worker: Worker, alice: httpx.AsyncClient
) -> None:
    session = f"con-{uuid.uuid4().hex[:8]}"
    async with alice:
        first = await alice.post(f"/sessions/{session}/messages", json={"text": "My order is late"})
        assert first.status_code == 200, first.text
        asked = await alice.post(f"/sessions/{session}/handoff", json={"reason": "order 1234"})
        assert asked.status_code == 200, asked.text
        await alice.post(f"/sessions/{session}/messages", json={"text": "Hello? A person?"})

        await sign_in(page, gateway, settings, "agent-ann", "agent")
        await expect(page.locator("#who")).to_have_text("Signed in as agent-ann (agent)")
        item = page.locator(f'.queue-item[data-session="{session}"]')
        await expect(item).to_contain_text("waiting")
        await expect(item).to_contain_text("alice")
        await item.click()
        transcript = page.locator("#transcript")
        await expect(transcript.locator(".msg.user .bubble")).to_have_text(
            ["My order is late", "Hello? A person?"]
        )
        await expect(page.locator("#handoff-reason")).to_have_text("Reason: order 1234")
        await expect(page.locator("#reply-form")).to_be_hidden()  # not theirs yet

        await page.get_by_role("button", name="Claim").click()
        await expect(page.locator("#handoff-state")).to_have_text("claimed by agent-ann")
        await page.locator("#reply-input").fill("Hi Alice, I am looking at order 1234 now.")
        await page.locator("#reply-input").press("Enter")
        await expect(transcript.locator(".msg.agent .bubble")).to_have_text(
            "Hi Alice, I am looking at order 1234 now."
        )
        await expect(transcript.locator(".msg.agent .pill.agent")).to_have_text(
            "agent-ann (a person from the team)"
        )
        await page.screenshot(path=str(SCREENSHOT), animations="disabled")
        await shot(page, "console-claimed")

        history = (await alice.get(f"/sessions/{session}/messages")).json()["items"]
        assert history[-1]["role"] == "agent"
        assert history[-1]["content"] == "Hi Alice, I am looking at order 1234 now."

        await page.get_by_role("button", name="Hand back to the assistant").click()
        await expect(item).to_have_count(0)  # out of the queue
        await expect(page.locator("#reply-form")).to_be_hidden()
        answered = await alice.post(f"/sessions/{session}/messages", json={"text": "thanks"})
        assert answered.json()["reply"] == "Fake reply to: thanks"


async def test_a_token_without_the_agent_role_is_told_so(
    page: Page, gateway: str, settings: Settings
) -> None:
    await sign_in(page, gateway, settings, "bob")
    await expect(page.locator("#alerts")).to_have_text(
        "The console needs the agent role; bob does not have it."
    )
    await expect(page.locator(".queue-item")).to_have_count(0)


async def test_an_admin_sees_the_overview(
    page: Page, gateway: str, settings: Settings, worker: Worker, alice: httpx.AsyncClient
) -> None:
    session = f"ov-{uuid.uuid4().hex[:8]}"
    async with alice:
        await alice.post(f"/sessions/{session}/messages", json={"text": "hello"})
        await alice.post(f"/sessions/{session}/handoff", json={})
    await sign_in(page, gateway, settings, "root", "admin")
    await expect(page.locator("#who")).to_have_text("Signed in as root (admin)")
    await page.get_by_role("button", name="Overview").click()
    overview = page.locator("#overview")
    handed = overview.locator("table", has_text="Handed to a person now")
    await expect(handed.locator("tbody tr")).to_have_text(["waiting1"])
    escalations = overview.locator("table", has_text="Escalations")
    await expect(escalations.locator("tbody td")).to_have_text(["1", "1", "100.0 %"])
    usage = overview.locator("table", has_text="Usage today")
    await expect(usage.locator("tbody tr td").first).to_have_text("alice")
    breakers = overview.locator("table", has_text="Provider circuit breakers")
    await expect(breakers.locator("tbody tr")).to_have_count(4)
    await shot(page, "console-overview")
