"""Edit an earlier message in the page: the inline editor saves a branch, the page moves
to it (a new session in the list) and streams its answer; the branch links back to its
parent, which is untouched and links to the branch on the edited message."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Page, expect
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.ui.support import open_session_id, open_signed_in, shot

REPLIES = "#message-list .msg.assistant"
BUBBLES = "#message-list .msg .bubble"
SAID = ["I am planning a trip to Lisbon", "what should I pack for rain?", "and for a wedding?"]
EDITED = "what should I pack for sun?"


async def send(page: Page, text: str) -> None:
    await page.locator("#message-input").fill(text)
    await page.locator("#message-input").press("Enter")
    await expect(page.locator(REPLIES).last).to_have_attribute("data-state", "complete")


async def test_editing_a_message_branches_and_the_links_move_between_them(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    await open_signed_in(page, gateway, settings, f"u-{uuid.uuid4().hex[:8]}")
    for text in SAID:
        await send(page, text)
    parent = open_session_id(page)
    whole = [part for text in SAID for part in (text, f"Fake reply to: {text}")]
    await expect(page.locator(BUBBLES)).to_have_text(whole)
    await expect(page.locator("#branch-bar")).to_be_hidden()

    second = page.locator("#message-list .msg.user").nth(1)
    await second.get_by_role("button", name="Edit").click()
    editor = second.get_by_label("Edit your message")
    await expect(editor).to_be_focused()
    await expect(editor).to_have_value(SAID[1])
    await second.get_by_role("button", name="Cancel").click()  # nothing changes
    await expect(editor).to_be_hidden()
    await expect(second.locator(".bubble")).to_have_text(SAID[1])

    llm.tokens_per_second = 8  # the branch's answer streams in
    await second.get_by_role("button", name="Edit").click()
    await editor.fill(EDITED)
    await second.get_by_role("button", name="Save as a branch").click()
    await expect(page).not_to_have_url(re.compile(f"#s/{parent}$"))
    await expect(page.locator(REPLIES).last).to_have_attribute("data-state", "streaming")
    await expect(page.locator(REPLIES).last).to_have_attribute("data-state", "complete")
    branch = open_session_id(page)
    title = f"{SAID[0]} (edited)"
    expected = [SAID[0], f"Fake reply to: {SAID[0]}", EDITED, f"Fake reply to: {EDITED}"]
    await expect(page.locator(BUBBLES)).to_have_text(expected)
    await expect(page.locator("#session-title")).to_have_text(title)
    await expect(page.locator("#session-list .session-title")).to_have_text([title, SAID[0]])
    bar = page.locator("#branch-bar")
    await expect(bar).to_have_text(f"Branched from {SAID[0]}")
    await shot(page, "branch")

    # After a reload the branch holds the same, and its link goes to the untouched parent.
    await page.reload()
    await expect(page.locator(BUBBLES)).to_have_text(expected)
    await bar.get_by_role("link", name=SAID[0]).click()
    await expect(page).to_have_url(re.compile(f"#s/{parent}$"))
    await expect(page.locator(BUBBLES)).to_have_text(whole)
    await expect(bar).to_have_text(f"Branches: {title}")
    marker = second.get_by_role("link", name=f"Edited in \u201c{title}\u201d")
    await expect(marker).to_be_visible()
    await shot(page, "branch-parent")
    await marker.click()
    await expect(page).to_have_url(re.compile(f"#s/{branch}$"))
    await expect(page.locator(BUBBLES)).to_have_text(expected)
