"""Rating a reply in the page: thumbs up or down (aria-pressed), a reason after a thumbs
down, the rating stored in the feedback table and shown again after a reload, and a click
on the pressed thumb removing it."""

from __future__ import annotations

import uuid

from playwright.async_api import Page, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from shared.config import Settings
from tests.support import assert_eventually
from tests.ui.support import open_signed_in, shot

REPLIES = "#message-list .msg.assistant"


async def test_thumbs_rate_a_reply_with_a_reason_and_a_second_click_unrates_it(
    page: Page, gateway: str, settings: Settings, worker: Worker, engine: AsyncEngine
) -> None:
    await open_signed_in(page, gateway, settings, f"u-{uuid.uuid4().hex[:8]}")
    await page.locator("#message-input").fill("Which city is the capital of Portugal?")
    await page.locator("#message-input").press("Enter")
    reply = page.locator(REPLIES).last
    await expect(reply).to_have_attribute("data-state", "complete")
    turn_id = await reply.get_attribute("data-turn-id")
    assert turn_id
    up = reply.get_by_role("button", name="Good reply")
    down = reply.get_by_role("button", name="Bad reply")
    reason = reply.get_by_label("What was wrong? (optional)")
    await expect(up).to_have_attribute("aria-pressed", "false")
    await expect(down).to_have_attribute("aria-pressed", "false")
    await expect(reason).to_be_hidden()

    async def stored(*expected: tuple[str, str, str | None]) -> None:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT turn_id, rating, reason FROM feedback"))
            assert [(str(t), r, why) for t, r, why in rows] == list(expected)

    await up.click()
    await expect(up).to_have_attribute("aria-pressed", "true")
    await assert_eventually(lambda: stored((turn_id, "up", None)))

    await down.click()
    await expect(down).to_have_attribute("aria-pressed", "true")
    await expect(up).to_have_attribute("aria-pressed", "false")
    await expect(reason).to_be_focused()
    await assert_eventually(lambda: stored((turn_id, "down", None)))
    await reason.fill("wrong city")
    await shot(page, "rating")
    await reason.press("Enter")
    await expect(reason).to_be_hidden()
    await expect(reply.locator(".rating-said")).to_have_text(
        "Thanks, noted: \u201cwrong city\u201d"
    )
    await assert_eventually(lambda: stored((turn_id, "down", "wrong city")))

    # After a reload the thumb is still pressed; pressed again, it removes the rating.
    await page.reload()
    reply = page.locator(REPLIES).last
    down = reply.get_by_role("button", name="Bad reply")
    await expect(down).to_have_attribute("aria-pressed", "true")
    await expect(reply.get_by_role("button", name="Good reply")).to_have_attribute(
        "aria-pressed", "false"
    )
    await down.click()
    await expect(down).to_have_attribute("aria-pressed", "false")
    await assert_eventually(lambda: stored())
