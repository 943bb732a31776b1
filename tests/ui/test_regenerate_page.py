"""Regenerate in the page, on the real gateway and worker with the fake model: the latest
reply is answered again in place, its versions show as "2 / 2" with arrows; on the latest
turn an arrow picks the version later turns see, on an earlier one it only browses."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.async_api import Page, expect
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import auth
from tests.support import assert_eventually
from tests.ui.support import open_session_id, open_signed_in, shot

REPLIES = "#message-list .msg.assistant"
FIRST = "Fake reply to: name a colour"
AGAIN = "A deep green, like moss after the rain."


async def send(page: Page, text: str) -> None:
    await page.locator("#message-input").fill(text)
    await page.locator("#message-input").press("Enter")
    await expect(page.locator(REPLIES).last).to_have_attribute("data-state", "complete")


async def test_regenerate_streams_a_new_version_and_the_arrows_pick_or_browse(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    name = f"u-{uuid.uuid4().hex[:8]}"
    await open_signed_in(page, gateway, settings, name)
    await send(page, "name a colour")
    reply = page.locator(REPLIES).last
    await expect(reply.locator(".bubble")).to_have_text(FIRST)
    await expect(reply.locator(".versions")).to_be_hidden()  # one version: no arrows
    session = open_session_id(page)

    llm.script({"endpoint": "chat", "stream": True, "reply": AGAIN, "tokens_per_second": 15})
    await reply.get_by_role("button", name="Regenerate").click()
    await expect(reply).to_have_attribute("data-state", "streaming")
    await expect(reply.locator(".bubble")).not_to_contain_text("Fake reply")  # in place
    await expect(reply.get_by_role("button", name="Regenerate")).to_be_hidden()
    await expect(reply).to_have_attribute("data-state", "complete")
    await expect(reply.locator(".bubble")).to_have_text(AGAIN)
    await expect(reply.locator(".versions-label")).to_have_text("2 / 2")
    await expect(page.locator(REPLIES)).to_have_count(1)  # the same reply, not a new one
    await expect(reply.get_by_role("button", name="Next version")).to_be_disabled()
    await shot(page, "regenerate-versions")

    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, name), timeout=30
    ) as api:

        async def in_use(version: int, content: str) -> None:
            items: list[dict[str, Any]] = (await api.get(f"/sessions/{session}/messages")).json()[
                "items"
            ]
            last = items[-1]
            assert (last["version"], last["versions"], last["content"]) == (version, 2, content)

        await in_use(2, AGAIN)
        # On the latest turn an arrow picks: later turns see that version.
        await reply.get_by_role("button", name="Previous version").click()
        await expect(reply.locator(".bubble")).to_have_text(FIRST)
        await expect(reply.locator(".versions-label")).to_have_text("1 / 2")
        await assert_eventually(lambda: in_use(1, FIRST))

        await page.reload()
        reply = page.locator(REPLIES).last
        await expect(reply.locator(".bubble")).to_have_text(FIRST)
        await expect(reply.locator(".versions-label")).to_have_text("1 / 2")

        # Once a later turn exists, the arrows only browse and say which one is in use.
        await send(page, "why that one?")
        earlier, latest = page.locator(REPLIES).first, page.locator(REPLIES).last
        await expect(earlier.get_by_role("button", name="Regenerate")).to_be_hidden()
        await expect(latest.get_by_role("button", name="Regenerate")).to_be_visible()
        await expect(earlier.locator(".versions-note")).to_have_text("in use")
        await earlier.get_by_role("button", name="Next version").click()
        await expect(earlier.locator(".bubble")).to_have_text(AGAIN)
        await expect(earlier.locator(".versions-label")).to_have_text("2 / 2")
        await expect(earlier.locator(".versions-note")).to_have_text("version 1 is in use")
        items = (await api.get(f"/sessions/{session}/messages")).json()["items"]
        assert [(m["version"], m["content"]) for m in items if m["role"] == "assistant"] == [
            (1, FIRST),
            (1, "Fake reply to: why that one?"),
        ]
