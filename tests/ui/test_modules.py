"""The page's own modules, run in the browser: the markdown renderer and the SSE parser."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

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
