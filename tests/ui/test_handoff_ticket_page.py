"""Nobody from the team claims a handed-off chat within HANDOFF_SLA: the user's page says
so (through the session's feed) and offers to leave it as a ticket, which opens one."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Page, expect
from temporalio.worker import Worker

from shared.config import Settings
from tests.ui.support import open_session_id, open_signed_in
from tests.workflows.tool_support import tickets


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"handoff_sla_seconds": 5.0})


async def test_past_the_sla_the_page_offers_a_ticket(
    page: Page, gateway: str, settings: Settings, worker: Worker
) -> None:
    await open_signed_in(page, gateway, settings, f"u-{uuid.uuid4().hex[:8]}")
    await page.locator("#message-input").fill("My invoice is wrong")
    await page.locator("#message-input").press("Enter")
    await expect(page.locator("#message-list .msg.assistant").last).to_have_attribute(
        "data-state", "complete"
    )
    await page.get_by_role("button", name="Talk to a person").click()
    banner = page.locator("#handoff-banner")
    await expect(banner).to_contain_text("Nobody from the team is free yet", timeout=30_000)
    await banner.get_by_role("button", name="Leave it as a ticket").click()
    await expect(banner).to_contain_text("is with the team.")
    (ticket,) = await tickets(settings, open_session_id(page))
    assert ticket.title.endswith("waits for a person")
    assert "Ticket #" in await banner.inner_text()
