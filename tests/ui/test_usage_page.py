"""The page's usage line and cached replies, in headless Chromium against the real gateway
and worker with CACHE_MODE=exact and a small daily budget: the line follows each turn, a
repeated question is marked `cached` (live and after a reload) and spends nothing, and a
used-up budget is said in words."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.async_api import Page, expect
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.ui.support import open_signed_in, shot

LAST_REPLY = "#message-list .msg.assistant >> nth=-1"
BUDGET = 600  # tokens a day; a turn in a new chat reserves ~110 (MAX_TOKENS=40), uses ~70


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"cache_mode": "exact", "budget_tokens_per_day": BUDGET, "max_tokens": 40}
    )


async def send(page: Page, text: str) -> None:
    await page.locator("#message-input").fill(text)
    await page.locator("#message-input").press("Enter")


def tokens_today(line: str) -> int:
    match = re.match(r"Today: ([\d,]+) of 600 tokens", line)
    assert match, line
    return int(match.group(1).replace(",", ""))


async def test_usage_follows_turns_and_a_cached_reply_is_marked_and_free(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    await open_signed_in(page, gateway, settings, f"u-{uuid.uuid4().hex[:8]}")
    usage = page.locator("#usage")
    await expect(usage).to_have_text(re.compile(r"^Today: 0 of 600 tokens, \$0\.0000"))

    await send(page, "What is Temporal?")
    reply = page.locator(LAST_REPLY)
    await expect(reply).to_have_attribute("data-state", "complete")
    await expect(reply.locator(".pill.cached")).to_have_count(0)
    await expect(usage).not_to_have_text(re.compile(r"^Today: 0 of"))
    spent = tokens_today(await usage.inner_text())
    assert 0 < spent < BUDGET

    await page.locator("#new-session").click()
    await send(page, "what is temporal")
    reply = page.locator(LAST_REPLY)
    await expect(reply).to_have_attribute("data-state", "complete")
    await expect(reply.locator(".pill.cached")).to_have_text("cached")
    await expect(reply.locator(".bubble")).to_have_text("Fake reply to: What is Temporal?")
    assert tokens_today(await usage.inner_text()) == spent  # the cache spent nothing
    await shot(page, "cached-reply-and-usage")

    await page.reload()
    await expect(page.locator(LAST_REPLY).locator(".pill.cached")).to_have_text("cached")

    # Spend the rest, a chat a question: the refusal says what ran out and when it resets,
    # as an alert (the gateway's check) or on the reply (its model call's reservation).
    refusal = page.locator("#alerts .alert-text, #message-list .msg-error").filter(
        has_text="Budget used up"
    )
    complete = page.locator("#message-list .msg.assistant[data-state=complete]")
    for i in range(20):
        await page.locator("#new-session").click()
        await send(page, f"question {i}")
        await expect(refusal.or_(complete).first).to_be_visible()
        if await refusal.count():
            break
    await expect(refusal).to_have_text(
        re.compile(r"^Budget used up: the daily tokens budget of 600 tokens .* resets at 20")
    )
    assert BUDGET - 200 < tokens_today(await usage.inner_text()) <= BUDGET
    await shot(page, "budget-used-up")
