"""Tool-calling turns in the page, against the real gateway and worker with the fake model
asking for a call that needs approval: the reply lists the call, an approval card shows
what it would do, and a click on Approve or Deny decides it, exactly once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, Route, expect
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer, Step, ToolCallStep
from shared.config import Settings
from tests.chatbot.api_support import auth
from tests.ui.support import open_session_id, open_signed_in, shot
from tests.workflows.tool_support import tickets

LAST_REPLY = "#message-list .msg.assistant >> nth=-1"
SCREENSHOT = Path("/tmp/approval-card.png")
SCREENSHOT_AFTER_RELOAD = Path("/tmp/approval-after-reload.png")


@pytest.fixture(autouse=True)
def _tool_calling(settings: Settings) -> None:
    """Before the worker and the gateway are built from these settings."""
    settings.tool_calling = "on"
    settings.tool_max_steps = 3
    settings.approval_timeout_seconds = 120  # longer than any test: nothing times out


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def asks_for(call: ToolCallStep, then: str) -> tuple[Step, Step]:
    """The model's two rounds: ask for `call`, then answer `then` with its result."""
    return (
        Step(endpoint="chat", tools=True, stream=True, tool_calls=[call]),
        Step(endpoint="chat", stream=True, reply=then),
    )


async def send(page: Page, message: str) -> None:
    await page.locator("#message-input").fill(message)
    await page.locator("#message-input").press("Enter")


async def test_approve_in_the_page_runs_the_tool_once_and_the_reply_follows(
    page: Page,
    gateway: str,
    settings: Settings,
    worker: Worker,
    llm: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    ticket = {"title": "Printer on fire", "description": "Smoke from tray 2", "priority": "urgent"}
    llm.script(
        *asks_for(
            ToolCallStep(id="call_t1", name="create_ticket", arguments=ticket),
            "I opened a ticket for the printer.",
        )
    )
    name = user()
    await open_signed_in(page, gateway, settings, name)
    await send(page, "Please open a ticket: the printer is on fire")
    reply = page.locator(LAST_REPLY)
    card = reply.locator(".approval")
    await expect(card).to_be_visible()
    await expect(card.locator(".approval-title")).to_have_text("Approve create_ticket?")
    assert json.loads(await card.locator(".approval-args").inner_text()) == ticket
    row = reply.locator(".tool-call")
    await expect(row).to_have_count(1)
    await expect(row.locator(".tool-name")).to_have_text("create_ticket")
    await expect(row.locator(".tool-args")).to_have_text(
        'title: "Printer on fire", description: "Smoke from tray 2", priority: "urgent"'
    )
    await expect(row.locator(".tool-status")).to_have_text("needs approval")
    await expect(page.locator("#status")).to_have_text(
        "Waiting for your approval to run create_ticket."
    )
    await expect(reply.locator(".typing")).to_be_hidden()  # waiting for a person, not writing
    sid = open_session_id(page)
    assert await tickets(settings, sid) == []  # nothing runs before the decision
    await page.screenshot(path=str(SCREENSHOT), animations="disabled")
    await page.screenshot(path=str(tmp_path / "approval-card.png"), animations="disabled")
    await shot(page, "approval-card")

    await card.get_by_label("Note").fill("go ahead")
    await card.get_by_role("button", name="Approve create_ticket").click()
    await expect(reply).to_have_attribute("data-state", "complete")
    # The model chose the tools: the badge says so, not the router's guess at an intent.
    await expect(reply.locator(".pill.intent")).to_have_text("tools")
    await expect(reply.locator(".pill.intent")).to_have_attribute(
        "title", "The assistant chose its tools: create_ticket"
    )
    await expect(reply.locator(".bubble")).to_have_text("I opened a ticket for the printer.")
    await expect(card).to_have_attribute("data-decision", "approve")
    await expect(card.locator(".approval-message")).to_have_text(
        f"Approved by {name}: \u201cgo ahead\u201d"
    )
    await expect(card.get_by_role("button")).to_have_count(0)  # decided: no buttons left
    await expect(row.locator(".tool-status")).to_have_text("done")
    await expect(row.locator(".tool-summary")).to_contain_text("Ticket #")
    await expect(page.locator("#status")).to_have_text("")
    rows = await tickets(settings, sid)
    assert [r.title for r in rows] == ["Printer on fire"]
    assert rows[0].idempotency_key.endswith(":0")
    await shot(page, "approval-approved")

    # The stored turn shows its call too; nothing waits any more, so there is no card.
    await page.reload()
    reply = page.locator(LAST_REPLY)
    await expect(reply.locator(".bubble")).to_have_text("I opened a ticket for the printer.")
    await expect(reply.locator(".tool-call .tool-name")).to_have_text("create_ticket")
    await expect(reply.locator(".tool-call .tool-status")).to_have_text("done")
    await expect(reply.locator(".approval")).to_have_count(0)
    assert len(await tickets(settings, sid)) == 1


async def test_a_reloaded_page_shows_the_waiting_card_again_and_approve_finishes_the_turn(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    ticket = {"title": "Reloaded", "description": "After a reload", "priority": "low"}
    llm.script(
        *asks_for(
            ToolCallStep(id="call_r1", name="create_ticket", arguments=ticket),
            "Ticket opened after the reload.",
        )
    )
    await open_signed_in(page, gateway, settings, user())
    await send(page, "Open a ticket, then I reload the page")
    await expect(page.locator(LAST_REPLY).locator(".approval")).to_be_visible()
    sid = open_session_id(page)

    # History lists finished turns only: the waiting one comes from GET .../approvals,
    # and the page follows its stream again from the start.
    await page.reload()
    await expect(page.locator("#message-input")).to_be_enabled()
    assert open_session_id(page) == sid
    replies = page.locator("#message-list .msg.assistant")
    reply = page.locator(LAST_REPLY)
    card = reply.locator(".approval")
    await expect(card).to_be_visible()
    await expect(card.locator(".approval-title")).to_have_text("Approve create_ticket?")
    assert json.loads(await card.locator(".approval-args").inner_text()) == ticket
    await expect(reply.locator(".tool-call")).to_have_count(1)
    await expect(reply.locator(".tool-status")).to_have_text("needs approval")
    await expect(page.locator("#status")).to_have_text(
        "Waiting for your approval to run create_ticket."
    )
    await expect(page.locator("#stop")).to_be_visible()  # the turn is the page's again
    await expect(page.locator("#send")).to_be_disabled()
    approve = card.get_by_role("button", name="Approve create_ticket")
    await expect(approve).to_be_enabled()
    await expect(card).to_have_attribute("data-state", "waiting")  # the replay kept it
    await expect(replies).to_have_count(1)
    assert await tickets(settings, sid) == []
    await page.screenshot(path=str(SCREENSHOT_AFTER_RELOAD), animations="disabled")
    await shot(page, "approval-after-reload")

    await approve.click()
    await expect(reply).to_have_attribute("data-state", "complete")
    await expect(reply.locator(".bubble")).to_have_text("Ticket opened after the reload.")
    await expect(card).to_have_attribute("data-decision", "approve")
    await expect(reply.locator(".tool-status")).to_have_text("done")
    await expect(page.locator("#status")).to_have_text("")
    await expect(page.locator("#stop")).to_be_hidden()
    await expect(replies).to_have_count(1)
    assert [r.title for r in await tickets(settings, sid)] == ["Reloaded"]


async def test_deny_in_the_page_runs_nothing_and_the_card_says_denied(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    llm.script(
        *asks_for(
            ToolCallStep(id="call_d1", name="create_ticket", arguments={"title": "Not needed"}),
            "Alright, I did not open a ticket.",
        )
    )
    name = user()
    await open_signed_in(page, gateway, settings, name)
    await send(page, "Open a ticket, or maybe not")
    reply = page.locator(LAST_REPLY)
    card = reply.locator(".approval")
    await expect(card.get_by_role("button", name="Deny create_ticket")).to_be_enabled()
    await card.get_by_label("Note").fill("not now")
    await card.get_by_role("button", name="Deny create_ticket").click()
    await expect(reply).to_have_attribute("data-state", "complete")
    await expect(reply.locator(".bubble")).to_have_text("Alright, I did not open a ticket.")
    await expect(card).to_have_attribute("data-decision", "deny")
    await expect(card.locator(".approval-message")).to_have_text(
        f"Denied by {name}: \u201cnot now\u201d"
    )
    row = reply.locator(".tool-call")
    await expect(row.locator(".tool-status")).to_have_text("denied")
    await expect(row.locator(".tool-summary")).to_be_hidden()  # the card says it
    sid = open_session_id(page)
    assert await tickets(settings, sid) == []
    await shot(page, "approval-denied")

    # In history there is no card: the row says who denied it.
    await page.reload()
    row = page.locator(LAST_REPLY).locator(".tool-call")
    await expect(row.locator(".tool-status")).to_have_text("denied")
    await expect(row.locator(".tool-summary")).to_have_text(
        f"Denied by {name}: \u201cnot now\u201d"
    )
    assert await tickets(settings, sid) == []


async def test_a_failed_post_can_be_retried_and_a_decision_made_elsewhere_updates_the_card(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    llm.script(
        *asks_for(
            ToolCallStep(id="call_e1", name="create_ticket", arguments={"title": "Flaky"}),
            "Ticket opened.",
        )
    )
    name = user()
    await open_signed_in(page, gateway, settings, name)
    await send(page, "Open a ticket about the flaky network")
    reply = page.locator(LAST_REPLY)
    card = reply.locator(".approval")
    approve = card.get_by_role("button", name="Approve create_ticket")
    await expect(approve).to_be_enabled()

    asked: list[str] = []

    async def unavailable(route: Route) -> None:
        asked.append(route.request.url)
        await route.fulfill(
            status=503,
            headers={"Retry-After": "2"},
            json={"error": {"code": "unavailable", "message": "Temporal is not reachable"}},
        )

    await page.route("**/approvals/*", unavailable)
    await approve.click()
    await expect(card.locator(".approval-message")).to_have_text(
        "The service is unavailable right now: Temporal is not reachable. Try again in 2 s."
    )
    await expect(approve).to_be_enabled()  # nothing was decided: the person may try again
    await expect(card.get_by_role("button", name="Deny create_ticket")).to_be_enabled()
    await page.unroute("**/approvals/*", unavailable)
    [url] = asked
    assert url.endswith("/approvals/call_e1")

    # Decided from another client (the CLI, a second tab): the approval_decided event
    # reaches this page and the card shows it.
    async with httpx.AsyncClient(headers=auth(settings, name), timeout=60) as client:
        decided = await client.post(url, json={"decision": "approve", "note": "from the CLI"})
    assert decided.status_code == 200, decided.text
    await expect(card).to_have_attribute("data-decision", "approve")
    await expect(card.locator(".approval-message")).to_have_text(
        f"Approved by {name}: \u201cfrom the CLI\u201d"
    )
    await expect(reply).to_have_attribute("data-state", "complete")
    await expect(reply.locator(".bubble")).to_have_text("Ticket opened.")
    assert [r.title for r in await tickets(settings, open_session_id(page))] == ["Flaky"]
