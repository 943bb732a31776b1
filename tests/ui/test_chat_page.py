"""The chat page in headless Chromium against the real gateway and worker (real Temporal,
Postgres and Redis) with the fake LLM: what a person sees and can do."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
from playwright.async_api import Page, Route, expect
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import auth
from tests.ui.support import execute, open_session_id, open_signed_in, shot, token_for

LAST_REPLY = "#message-list .msg.assistant >> nth=-1"

# Records, for the last reply on the page, each (state, text length) it passes through.
WATCH_REPLY = """() => {
  window.__replySeen = [];
  const list = document.getElementById("message-list");
  new MutationObserver(() => {
    const replies = list.querySelectorAll(".msg.assistant");
    const reply = replies[replies.length - 1];
    if (reply) {
      const length = reply.querySelector(".bubble").textContent.length;
      window.__replySeen.push([reply.dataset.state, length]);
    }
  }).observe(list, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


async def send(page: Page, text: str) -> None:
    await page.locator("#message-input").fill(text)
    await page.locator("#message-input").press("Enter")


async def test_dev_mode_signs_in_by_itself_and_says_so(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    settings.jwt_secret = None
    await page.goto(gateway)
    await expect(page.locator("#who")).to_have_text("Signed in automatically as local")
    await expect(page.locator("#dev-mode")).to_be_visible()
    await expect(page.locator("#dev-mode-note")).to_contain_text("without JWT_SECRET")
    await expect(page.locator("#sign-in-dialog")).to_be_hidden()
    await expect(page.locator("#sign-out")).to_be_hidden()
    await send(page, "hello there")
    await expect(page.locator(LAST_REPLY)).to_have_attribute("data-state", "complete")
    await expect(page.locator(LAST_REPLY)).to_contain_text("Fake reply to: hello there")
    await shot(page, "dev-mode")


async def test_sign_in_with_a_pasted_token_is_remembered_until_sign_out(
    page: Page, gateway: str, settings: Settings
) -> None:
    name = user()
    await page.goto(gateway)
    dialog = page.locator("#sign-in-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#sign-in-error")).to_have_text("")  # a first visit is no error
    await page.locator("#token-input").fill("not-a-token")
    await page.locator("#sign-in-submit").click()
    await expect(page.locator("#sign-in-error")).to_have_text(
        "That token was not accepted: the token is not valid for this service."
    )
    await shot(page, "sign-in-rejected")
    assert await page.evaluate("localStorage.getItem('chatbot.token')") is None

    await page.locator("#token-input").fill(f"Bearer {token_for(settings, name)}")
    await page.locator("#sign-in-submit").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#who")).to_have_text(f"Signed in as {name}")
    await expect(page.locator("#dev-mode")).to_be_hidden()
    await page.reload()
    await expect(page.locator("#who")).to_have_text(f"Signed in as {name}")
    await expect(dialog).to_be_hidden()

    await page.locator("#sign-out").click()
    await expect(dialog).to_be_visible()
    assert await page.evaluate("localStorage.getItem('chatbot.token')") is None


async def test_reply_streams_in_token_by_token_then_shows_intent_and_timings(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    llm.tokens_per_second = 20  # ~2 s for the reply below
    await open_signed_in(page, gateway, settings, user())
    await page.evaluate(WATCH_REPLY)
    box = page.locator("#message-input")
    await box.fill("first line")
    await box.press("Shift+Enter")  # a new line, not a send
    await box.press_sequentially(f"second line {words(30)}")
    await expect(page.locator("#message-list .msg")).to_have_count(0)
    await box.press("Enter")

    mine = page.locator("#message-list .msg.user").last
    await expect(mine).to_have_text(f"first line\nsecond line {words(30)}")
    reply = page.locator(LAST_REPLY)
    await expect(reply).to_have_attribute("data-state", "streaming")
    await expect(page.locator("#stop")).to_be_visible()
    await expect(page.locator("#send")).to_be_disabled()
    await expect(reply.locator(".bubble")).to_have_text(re.compile(r"^Fake reply to: .{15}"))
    await shot(page, "streaming")
    await expect(reply).to_have_attribute("data-state", "complete")

    expected = f"Fake reply to: first line\nsecond line {words(30)}"
    assert await reply.locator(".bubble").inner_text() == expected
    seen = await page.evaluate("window.__replySeen")
    whole = len(expected.replace("\n", ""))  # textContent has no <br> newlines
    partial = {length for state, length in seen if state == "streaming" and 0 < length < whole}
    assert len(partial) >= 5, f"the reply did not grow token by token: {seen}"
    await expect(page.locator("#stop")).to_be_hidden()
    await expect(page.locator("#send")).to_be_enabled()
    await expect(reply.locator(".pill.intent")).to_have_text("chat")
    await expect(reply).not_to_contain_text(re.compile("null|undefined"))
    tip = reply.locator(".timings .tip")
    await expect(tip).to_be_hidden()
    await reply.locator(".timings").hover()
    await expect(tip).to_be_visible()
    await expect(tip).to_contain_text("first token:")
    await expect(tip).to_contain_text("end to end (this browser):")
    await expect(tip).to_contain_text("generate reply:")
    await shot(page, "reply-timings")
    # The new chat became a session titled by its first message.
    await expect(page.locator("#session-title")).to_have_text("first line")
    await expect(page.locator("#session-list .session-title")).to_have_text(["first line"])


async def test_stop_keeps_the_partial_reply_marked_stopped_also_after_reload(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    llm.tokens_per_second = 10
    await open_signed_in(page, gateway, settings, user())
    await send(page, words(200))
    reply = page.locator(LAST_REPLY)
    await expect(reply.locator(".bubble")).to_have_text(re.compile(r"^Fake reply to: w0 w1 w2"))
    await page.locator("#stop").click()
    await expect(reply).to_have_attribute("data-state", "cancelled")
    await expect(reply.locator(".pill.status-cancelled")).to_have_text("stopped")
    await expect(page.locator("#status")).to_have_text("Stopped; the partial reply was kept.")
    partial = await reply.locator(".bubble").inner_text()
    full = f"Fake reply to: {words(200)}"
    assert partial.startswith("Fake reply to: w0") and len(partial) < len(full)
    await shot(page, "stopped")

    await page.reload()
    reply = page.locator(LAST_REPLY)
    await expect(reply).to_have_attribute("data-state", "cancelled")
    await expect(reply.locator(".bubble")).to_have_text(partial)
    await expect(reply.locator(".pill.status-cancelled")).to_be_visible()


async def test_history_after_reload_shows_badges_company_cards_and_citations(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    await open_signed_in(page, gateway, settings, user())
    await send(page, "Which companies make valves?")
    await expect(page.locator(LAST_REPLY)).to_have_attribute("data-state", "complete")
    said = await page.locator(LAST_REPLY).locator(".bubble").inner_text()
    sid = open_session_id(page)
    # Tool results are stored with the turn (another issue fills them); written here in
    # the shapes the API documents, with markup in them that must stay text.
    tool_data = {
        "tool_results": [
            {
                "tool": "company_search",
                "sample": True,
                "companies": [
                    {
                        "name": "Acme Valves",
                        "description": "Industrial valves for water and gas.",
                        "industry": "Manufacturing",
                        "location": "Lyon, France",
                        "contact": "sales@acme.example",
                        "capabilities": ["ball valves", "gate valves"],
                        "score": 0.87,
                    },
                    {
                        "name": '<img src=x onerror="window.__xss = 1">',
                        "description": "<script>window.__xss = 2</script>",
                        "industry": "Plumbing",
                        "location": "Oslo",
                        "contact": "",
                        "capabilities": "fittings",
                        "score": 0.5,
                    },
                ],
            },
            {"tool": "web_search", "unavailable": True, "message": "web search is not set up"},
        ],
        "citations": [
            {
                "index": 1,
                "title": "Valve basics",
                "url": "https://example.com/valves",
                "snippet": "How valves work.",
            },
            {"index": 2, "title": "Sneaky", "url": "javascript:window.__xss = 3", "snippet": ""},
        ],
        "timings_ms": {"detect_intent": 5, "generate_reply": 900, "first_token": 120},
    }
    await execute(
        settings,
        "UPDATE messages SET tool_data = CAST(:data AS jsonb), intent = 'both' "
        "WHERE session_id = :sid AND role = 'assistant'",
        data=json.dumps(tool_data),
        sid=sid,
    )
    await page.reload()
    reply = page.locator(LAST_REPLY)
    await expect(reply.locator(".bubble")).to_have_text(said)
    await expect(page.locator("#message-list .msg.user")).to_have_text(
        ["Which companies make valves?"]
    )
    await expect(reply.locator(".pill.intent")).to_have_text("companies + web")
    await expect(reply.locator(".meta")).not_to_contain_text(re.compile("null|undefined"))
    cards = reply.locator(".card")
    await expect(cards).to_have_count(2)
    await expect(cards.first).to_contain_text("Acme Valves")
    await expect(cards.first).to_contain_text("Manufacturing \u00b7 Lyon, France")
    await expect(cards.first).to_contain_text("Capabilities: ball valves, gate valves")
    await expect(cards.first).to_contain_text("match 0.87")
    await expect(cards.nth(1)).to_contain_text('<img src=x onerror="window.__xss = 1">')
    await expect(cards.nth(1)).to_contain_text("<script>window.__xss = 2</script>")
    await expect(reply.locator(".companies .pill.warn")).to_have_text("sample data")
    await expect(reply.locator(".notice.warn")).to_have_text(
        "Web search is unavailable: web search is not set up"
    )
    sources = reply.locator(".citations li")
    await expect(sources).to_have_count(2)
    assert await sources.evaluate_all("items => items.map(li => li.value)") == [1, 2]
    link = sources.first.get_by_role("link", name="Valve basics")
    await expect(link).to_have_attribute("href", "https://example.com/valves")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")
    await expect(sources.nth(1).locator("a")).to_have_count(0)
    await expect(sources.nth(1)).to_contain_text("Sneaky")
    await expect(page.locator("#message-list img, #message-list script")).to_have_count(0)
    assert await page.evaluate("window.__xss") is None
    await reply.locator(".timings").hover()
    await expect(reply.locator(".timings .tip")).to_contain_text("first token: 120 ms")
    await expect(reply.locator(".timings .tip")).to_contain_text("total (server steps): 905 ms")
    link_to_temporal = page.locator("#temporal-link")
    await expect(link_to_temporal).to_have_attribute(
        "href", re.compile(rf"/namespaces/default/workflows/chat-{sid}$")
    )
    await shot(page, "history-cards")


async def test_html_in_messages_is_shown_as_text_and_never_runs(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    await open_signed_in(page, gateway, settings, user())
    # The fake LLM echoes the message, so the reply carries the same markup back.
    hostile = (
        "<script>window.__xss = 1</script> and "
        '<img src=x onerror="window.__xss = 2"> **bold** '
        "[bad](javascript:window.__xss=3) [good](https://example.com/page)"
    )
    await send(page, hostile)
    reply = page.locator(LAST_REPLY)
    await expect(reply).to_have_attribute("data-state", "complete")
    await expect(page.locator("#message-list .msg.user")).to_have_text([hostile])
    await expect(reply).to_contain_text("<script>window.__xss = 1</script>")
    await expect(reply).to_contain_text('<img src=x onerror="window.__xss = 2">')
    await expect(reply).to_contain_text("[bad](javascript:window.__xss=3)")
    await expect(reply.locator("strong")).to_have_text("bold")
    good = reply.get_by_role("link", name="good")
    await expect(good).to_have_attribute("href", "https://example.com/page")
    await expect(good).to_have_attribute("rel", "noopener noreferrer")
    await expect(reply.locator("a")).to_have_count(1)
    # Nowhere on the page, the chat list (titled by the message) included:
    await expect(page.locator("body img, body script")).to_have_count(0)
    await expect(page.locator("#session-list .session-title")).to_contain_text(["<script>"])
    assert await page.evaluate("window.__xss") is None
    await shot(page, "html-as-text")


async def test_rate_limit_is_shown_readably_and_the_message_is_kept(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    settings.rate_limit_per_minute = 1
    await open_signed_in(page, gateway, settings, user())
    await send(page, "first")
    await expect(page.locator(LAST_REPLY)).to_have_attribute("data-state", "complete")
    await send(page, "second")
    alert = page.locator("#alerts .alert")
    await expect(alert).to_be_visible()
    await expect(alert.locator(".alert-text")).to_have_text(
        re.compile(
            r"^Too many messages: rate limit of 1 messages a minute reached; retry in \d+ s\.$"
        )
    )
    await expect(alert).to_have_attribute("data-code", "rate_limited")
    await expect(page.locator("#message-input")).to_have_value("second")
    await expect(page.locator("#message-list .msg.user")).to_have_text(["first"])
    await expect(page.locator("#send")).to_be_enabled()
    await shot(page, "rate-limited")
    await alert.get_by_role("button", name="Dismiss").click()
    await expect(alert).to_have_count(0)


async def test_a_dropped_stream_resumes_from_the_last_event_it_saw(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    await open_signed_in(page, gateway, settings, user())
    cut_after: list[str] = []

    async def drop_midway(route: Route) -> None:
        """Pass the POST through, but end its stream after the third token."""
        if route.request.method != "POST":
            await route.continue_()
            return
        response = await route.fetch()
        frames = (await response.text()).split("\n\n")
        tokens = [i for i, frame in enumerate(frames) if "event: token" in frame]
        kept = frames[: tokens[2] + 1]
        match = re.search(r"^id: (.+)$", kept[-1], re.M)
        assert match
        cut_after.append(match.group(1))
        keep = ("content-type", "cache-control", "x-turn-id")
        headers = {k: v for k, v in response.headers.items() if k.lower() in keep}
        await route.fulfill(status=200, headers=headers, body="\n\n".join(kept) + "\n\n")

    await page.route("**/v1/sessions/*/messages", drop_midway)
    resumed: list[dict[str, str]] = []
    page.on(
        "request",
        lambda request: resumed.append(request.headers) if "/v1/turns/" in request.url else None,
    )
    text = words(20)
    await send(page, text)
    reply = page.locator(LAST_REPLY)
    await expect(reply).to_have_attribute("data-state", "complete")
    await expect(reply.locator(".bubble")).to_have_text(f"Fake reply to: {text}")
    assert len(cut_after) == 1
    assert [h.get("last-event-id") for h in resumed] == cut_after
    await expect(page.locator("#status")).to_have_text("")
    await expect(page.locator("#alerts .alert")).to_have_count(0)


async def test_chat_list_pages_renames_and_deletes_with_confirmation(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    name = user()
    async with httpx.AsyncClient(base_url=f"{gateway}/v1", headers=auth(settings, name)) as api:
        for i in range(23):
            created = await api.post("/sessions", json={"title": f"chat {i:02d}"})
            assert created.status_code == 201
        await open_signed_in(page, gateway, settings, name)
        titles = page.locator("#session-list .session-title")
        await expect(titles).to_have_count(20)
        await expect(titles.first).to_have_text("chat 22")  # newest first, and opened
        await expect(page.locator("#session-title")).to_have_text("chat 22")
        await page.locator("#more-sessions").click()
        await expect(titles).to_have_text([f"chat {i:02d}" for i in range(22, -1, -1)])
        await expect(page.locator("#more-sessions")).to_be_hidden()

        await page.locator("#session-list .session", has_text="chat 05").click()
        await expect(page.locator("#session-title")).to_have_text("chat 05")
        sid = open_session_id(page)
        await page.locator("#rename-session").click()
        await page.locator("#rename-input").fill("Valve suppliers")
        await page.locator("#rename-input").press("Enter")
        await expect(page.locator("#rename-dialog")).to_be_hidden()
        await expect(page.locator("#session-title")).to_have_text("Valve suppliers")
        await expect(page.locator("#session-list [aria-current=page]")).to_contain_text(
            "Valve suppliers"
        )
        assert (await api.get(f"/sessions/{sid}")).json()["title"] == "Valve suppliers"

        await page.locator("#delete-session").click()
        await expect(page.locator("#delete-dialog")).to_contain_text("Valve suppliers")
        await shot(page, "delete-confirmation")
        await page.locator("#delete-cancel").click()
        await expect(page.locator("#delete-dialog")).to_be_hidden()
        assert (await api.get(f"/sessions/{sid}")).status_code == 200
        await page.locator("#delete-session").click()
        await page.locator("#delete-ok").click()
        await expect(page.locator("#status")).to_have_text("Chat deleted.")
        await expect(titles).to_have_count(22)
        await expect(page.locator("#session-list")).not_to_contain_text("Valve suppliers")
        assert (await api.get(f"/sessions/{sid}")).status_code == 404
        await expect(page.locator("#session-title")).to_have_text("chat 22")

        await page.locator("#new-session").click()
        await expect(page.locator("#session-title")).to_have_text("New chat")
        await expect(page.locator("#rename-session")).to_be_hidden()
        await send(page, "A brand new topic")
        await expect(page.locator(LAST_REPLY)).to_have_attribute("data-state", "complete")
        await expect(titles.first).to_have_text("A brand new topic")
        newest = (await api.get("/sessions", params={"limit": 1})).json()["items"][0]
        assert newest["title"] == "A brand new topic" and newest["turn_count"] == 1
        await shot(page, "sessions")


@pytest.mark.parametrize("viewport", [{"width": 390, "height": 844}], ids=["phone"])
async def test_a_phone_sized_screen_keeps_the_message_box_and_a_chat_list_drawer(
    page: Page, gateway: str, settings: Settings, worker: Worker, llm: FakeOpenAIServer
) -> None:
    await open_signed_in(page, gateway, settings, user())
    box = page.locator("#message-input")
    await expect(box).to_be_visible()
    await expect(page.locator("#sidebar")).to_be_hidden()  # a drawer, closed
    await send(page, "Hello from a phone, with a message long enough to wrap around the screen")
    await expect(page.locator(LAST_REPLY)).to_have_attribute("data-state", "complete")
    bounds = await box.bounding_box()
    assert bounds is not None
    assert bounds["width"] > 200 and bounds["y"] + bounds["height"] <= 844
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390, "no side scroll"
    await shot(page, "phone")

    await page.locator("#open-sidebar").click()
    await expect(page.locator("#sidebar")).to_be_visible()
    await expect(page.locator("#session-list .session")).to_have_count(1)
    await shot(page, "phone-chat-list")
    await page.keyboard.press("Escape")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(box).to_be_visible()
