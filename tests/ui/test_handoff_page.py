"""A chat handed to a person, in the user's page, on the real gateway and worker: "Talk
to a person" pauses the assistant and says so, the banner follows the handoff through the
session's feed (claimed by whom), the agent's message appears as it is sent, the user's
own messages get no assistant reply meanwhile, and the return to the assistant is said."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import Page, expect
from temporalio.worker import Worker

from chatbot.auth import mint_token
from shared.config import Settings
from tests.ui.support import open_session_id, open_signed_in, shot


async def test_the_user_talks_to_a_person_and_back_to_the_assistant(
    page: Page, gateway: str, settings: Settings, worker: Worker
) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    await open_signed_in(page, gateway, settings, user)
    composer = page.locator("#message-input")
    await composer.fill("My parcel never came")
    await composer.press("Enter")
    replies = page.locator("#message-list .msg.assistant")
    await expect(replies.last).to_have_attribute("data-state", "complete")
    session = open_session_id(page)

    await page.get_by_role("button", name="Talk to a person").click()
    banner = page.locator("#handoff-banner")
    await expect(banner).to_contain_text("Waiting for a person from the team")
    await expect(page.get_by_role("button", name="Talk to a person")).to_be_hidden()

    await composer.fill("Hello, anyone?")
    await composer.press("Enter")
    await expect(page.locator("#message-list .msg.user").last).to_have_text("Hello, anyone?")
    await expect(replies).to_have_count(1)  # no assistant reply while a person has it
    await expect(composer).to_be_enabled()

    assert settings.jwt_secret is not None
    token = mint_token(settings.jwt_secret.get_secret_value(), "agent-zoe", roles=["agent"])
    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as agent:
        assert (await agent.post(f"/handoffs/{session}/claim")).status_code == 200
        await expect(banner).to_contain_text("agent-zoe from the team is with you")
        wrote = await agent.post(
            f"/handoffs/{session}/messages", json={"text": "Hi, I'm checking the parcel."}
        )
        assert wrote.status_code == 200, wrote.text
        message = page.locator("#message-list .msg.agent")
        await expect(message.locator(".bubble")).to_have_text("Hi, I'm checking the parcel.")
        await expect(message.locator(".pill.agent")).to_have_text(
            "agent-zoe (a person from the team)"
        )
        await shot(page, "handoff-user-page")
        back = await agent.post(f"/handoffs/{session}/release", json={"outcome": "bot"})
        assert back.status_code == 204
    await expect(banner).to_have_text("You are back with the assistant.")
    await expect(page.get_by_role("button", name="Talk to a person")).to_be_visible()

    # After a reload the history shows the agent's message as theirs.
    await page.reload()
    await expect(page.locator("#message-list .msg.agent .bubble")).to_have_text(
        "Hi, I'm checking the parcel."
    )
