"""The page's own modules, run in the browser: the markdown renderer, the SSE parser, a
reply's restart and the tool calls' approval cards."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Page, expect

from shared.config import Settings
from tests.ui.support import open_signed_in

RENDER = """async (cases) => {
  const { renderMarkdown } = await import("/static/markdown.js");
  return cases.map((text) => {
    const box = document.createElement("div");
    box.append(renderMarkdown(text));
    return box.innerHTML;
  });
}"""

LINK = 'target="_blank" rel="noopener noreferrer"'

MARKDOWN = [
    ("plain <b>text</b> & more", "<p>plain &lt;b&gt;text&lt;/b&gt; &amp; more</p>"),
    (
        "<script>alert(1)</script><img src=x onerror=alert(2)>",
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;</p>",
    ),
    (
        "**bold**, *italic*, _also_ and `a <code>`",
        "<p><strong>bold</strong>, <em>italic</em>, <em>also</em> and "
        "<code>a &lt;code&gt;</code></p>",
    ),
    ("snake_case_name and 2*3*4 stay", "<p>snake_case_name and 2*3*4 stay</p>"),
    ("**bold *and italic***", "<p><strong>bold <em>and italic</em></strong></p>"),
    ("line one\nline two\n\nnext paragraph", "<p>line one<br>line two</p><p>next paragraph</p>"),
    (
        "```html\n<b>not bold</b>\n**not markdown**\n```\nafter",
        '<pre><code data-lang="html">&lt;b&gt;not bold&lt;/b&gt;\n**not markdown**</code></pre>'
        "<p>after</p>",
    ),
    ("```\nstill streaming", "<pre><code>still streaming</code></pre>"),
    (
        "Steps:\n- one\n- **two**\n\n1. first\n2. second",
        "<p>Steps:</p><ul><li>one</li><li><strong>two</strong></li></ul>"
        "<ol><li>first</li><li>second</li></ol>",
    ),
    ("3. three\n4. four", '<ol start="3"><li>three</li><li>four</li></ol>'),
    ("## Heading", "<h4>Heading</h4>"),
    (
        "[ok](https://example.com/a?b=1&c=2) [js](javascript:alert(1)) [rel](/v1/me) "
        "[data](data:text/html,hi)",
        f'<p><a href="https://example.com/a?b=1&amp;c=2" {LINK}>ok</a> '
        "[js](javascript:alert(1)) [rel](/v1/me) [data](data:text/html,hi)</p>",
    ),
    (
        "see https://example.com/x. Or (https://example.org/y)",
        f'<p>see <a href="https://example.com/x" {LINK}>https://example.com/x</a>. '
        f'Or (<a href="https://example.org/y" {LINK}>https://example.org/y</a>)</p>',
    ),
    (
        '[**"quoted"**](http://example.com/")',
        f'<p><a href="http://example.com/%22" {LINK}><strong>"quoted"</strong></a></p>',
    ),
]


async def test_markdown_renders_safely(page: Page, gateway: str) -> None:
    await page.goto(gateway)
    rendered = await page.evaluate(RENDER, [source for source, _ in MARKDOWN])
    for (source, expected), html in zip(MARKDOWN, rendered, strict=True):
        assert html == expected, f"markdown {source!r}"


PARSE = """async (chunks) => {
  const { readEvents } = await import("/static/sse.js");
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
  const events = [];
  await readEvents(body, (event) => events.push(event));
  return events;
}"""


@pytest.mark.parametrize(
    "chunks",
    [
        [
            'retry: 1000\n\nid: 1-0\nevent: token\ndata: {"text": "Hel"}\n\n'
            ': keep-alive\n\nid: 1-1\nevent: token\ndata: {"text": "lo"}\n\n'
            'id: 1-2\nevent: final\ndata: {"result": {"reply": "Hello"}}\n\n'
        ],
        # Split anywhere, even inside a "\r\n" or a multi-byte character's line.
        [
            "retry: 1000\r\n\r\nid: 1-0\r",
            "\nevent: tok",
            'en\r\ndata: {"text": ',
            '"Hel"}\r\n\r',
            '\n: keep-alive\n\nid: 1-1\nevent: token\ndata: {"text": "lo"}',
            '\n\nid: 1-2\nevent: final\ndata: {"result": {"reply": "Hello"}}\n\n',
        ],
    ],
    ids=["whole", "split"],
)
async def test_sse_parser_yields_each_event_once(
    page: Page, gateway: str, chunks: list[str]
) -> None:
    await page.goto(gateway)
    events = await page.evaluate(PARSE, chunks)
    assert events == [
        {"id": "1-0", "type": "token", "data": {"text": "Hel"}},
        {"id": "1-1", "type": "token", "data": {"text": "lo"}},
        {"id": "1-2", "type": "final", "data": {"result": {"reply": "Hello"}}},
    ]


RESTART = """async (cases) => {
  const { AssistantMessage } = await import("/static/messages.js");
  return cases.map(([streamed, keep]) => {
    const view = new AssistantMessage();
    view.append(streamed);
    view.restart(keep);
    return [view.text, view.body.textContent];
  });
}"""


RESTARTS = [
    ("Step one said this. Step two was cut", 20, "Step one said this. "),
    # keep_chars counts code points, as Python's len() does: an emoji is one.
    ("a\U0001f600b and more", 2, "a\U0001f600"),
    ("all of it goes", 0, ""),
    ("an older event has no keep_chars", None, ""),
    ("short", 50, "short"),
]


async def test_a_restart_keeps_the_first_keep_chars_of_the_reply(page: Page, gateway: str) -> None:
    await page.goto(gateway)
    results = await page.evaluate(RESTART, [[streamed, keep] for streamed, keep, _ in RESTARTS])
    for (streamed, keep, kept), (text, shown) in zip(RESTARTS, results, strict=True):
        assert text == kept, f"{streamed!r} keeping {keep}"
        assert shown == kept.rstrip(), f"{streamed!r} keeping {keep}"  # no trailing blanks


# Three calls wait for approval; the page's decide() answers each differently.
MOUNT_CALLS = """async (hostile) => {
  const { ToolCalls } = await import("/static/tools.js");
  const { ApiError } = await import("/static/api.js");
  const answers = {
    c1: (decision, note) => ({ turn_id: "t", call_id: "c1", decision, note, repeated: false }),
    c2: () => { throw new ApiError(409, "conflict", "the turn has moved on"); },
    c3: () => { throw new ApiError(503, "unavailable", "Temporal is not reachable"); },
  };
  window.__decided = [];
  const calls = new ToolCalls({
    decide: async (id, decision, note) => {
      window.__decided.push([id, decision, note]);
      return answers[id](decision, note);
    },
  });
  window.__calls = calls;
  const li = document.createElement("li");
  li.append(calls.node);
  document.getElementById("message-list").append(li);
  ["c1", "c2", "c3"].forEach((id, index) => {
    const record = {
      id, index, step: 0, name: "create_ticket", idempotency_key: `t:${index}`,
      arguments: { title: hostile, n: index }, needs_approval: true, status: "pending",
    };
    calls.update(record);
    calls.update({ ...record, status: "awaiting_approval" });
  });
}"""

UPDATE_CALL = """(record) => window.__calls.update({
  index: 0, step: 0, name: "create_ticket", arguments: {}, needs_approval: true, ...record,
})"""


async def test_approval_cards_escape_arguments_and_show_each_answer_to_a_decision(
    page: Page, gateway: str, settings: Settings
) -> None:
    await open_signed_in(page, gateway, settings, "cards")
    hostile = '<img src=x onerror="window.__xss = 1">'
    await page.evaluate(MOUNT_CALLS, hostile)
    rows = page.locator(".tool-call")
    await expect(rows).to_have_count(3)  # each call once, though each came twice
    first, second, third = rows.nth(0), rows.nth(1), rows.nth(2)
    args = first.locator(".approval-args")
    await expect(args).to_have_text(json.dumps({"title": hostile, "n": 0}, indent=2))
    await expect(first.locator(".tool-args")).to_have_text(f"title: {json.dumps(hostile)}, n: 0")
    await expect(page.locator("#message-list img")).to_have_count(0)
    assert await page.evaluate("window.__xss") is None
    # A stream followed from its start (a reopened chat) repeats the call's first event.
    await page.evaluate(UPDATE_CALL, {"id": "c1", "status": "pending"})
    await expect(first.locator(".approval")).to_have_attribute("data-state", "waiting")
    await expect(first.locator(".tool-status")).to_have_text("needs approval")

    # Decided: the answer is shown; the event that follows adds who decided.
    await first.get_by_label("Note").fill("  ok  ")
    await first.get_by_role("button", name="Approve create_ticket").click()
    await expect(first.locator(".approval-message")).to_have_text("Approved: \u201cok\u201d")
    await expect(first.get_by_role("button")).to_have_count(0)
    approval = {"decision": "approve", "note": "ok", "decided_by": "alice", "timed_out": False}
    await page.evaluate(UPDATE_CALL, {"id": "c1", "status": "pending", "approval": approval})
    await expect(first.locator(".approval-message")).to_have_text(
        "Approved by alice: \u201cok\u201d"
    )
    await page.evaluate(
        UPDATE_CALL,
        {"id": "c1", "status": "ok", "approval": approval, "content": "Ticket #7 opened", "ms": 12},
    )
    await expect(first.locator(".tool-status")).to_have_text("done")
    await expect(first.locator(".tool-summary")).to_have_text("Ticket #7 opened (12 ms)")

    # 409: the turn has moved on; trying again cannot help, so the buttons stay off.
    await second.get_by_role("button", name="Deny create_ticket").click()
    await expect(second.locator(".approval-message")).to_have_text(
        "This turn has moved on; your decision was not recorded."
    )
    await expect(second.get_by_role("button", name="Approve create_ticket")).to_be_disabled()
    await expect(second.get_by_role("button", name="Deny create_ticket")).to_be_disabled()
    timed_out = {"decision": "deny", "note": "no decision within 1 min", "timed_out": True}
    await page.evaluate(UPDATE_CALL, {"id": "c2", "status": "timed_out", "approval": timed_out})
    await expect(second.locator(".approval-message")).to_have_text(
        "Nobody decided in time (no decision within 1 min), so the call was not made."
    )
    await expect(second.locator(".tool-status")).to_have_text("timed out")

    # Any other error: its text, and the buttons back for another try.
    await third.get_by_role("button", name="Approve create_ticket").click()
    await expect(third.locator(".approval-message")).to_have_text(
        "The service is unavailable right now: Temporal is not reachable."
    )
    await expect(third.get_by_role("button", name="Approve create_ticket")).to_be_enabled()
    await expect(third.get_by_label("Note")).to_be_enabled()
    await page.evaluate(UPDATE_CALL, {"id": "c3", "status": "cancelled"})
    await expect(third.locator(".approval-message")).to_have_text(
        "The turn was cancelled before anyone decided; the call was not made."
    )
    await expect(third.get_by_role("button")).to_have_count(0)
    assert await page.evaluate("window.__decided") == [
        ["c1", "approve", "ok"],
        ["c2", "deny", ""],
        ["c3", "approve", ""],
    ]
