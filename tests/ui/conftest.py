"""Headless Chromium driven by Playwright's async API (the tests run in pytest-asyncio's
session loop, where the sync API cannot). The browser is Debian's `/usr/bin/chromium`:
nothing is downloaded, and without it every browser test fails saying how to install it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# The network here is closed: without these, Chromium stalls on its own background calls.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDE: ViewportSize = {"width": 1280, "height": 800}
TIMEOUT_MS = 20_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The browser binary; its absence fails the tests (CI installs it), never skips them."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}; the web UI tests need it. "
            "Install it with `apt-get install -y chromium` (Debian/Ubuntu), "
            "or point CHROMIUM_PATH at a Chromium binary.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        # Playwright gives every launch a fresh, temporary user-data-dir.
        browser = await pw.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_FLAGS, headless=True
        )
        yield browser
        await browser.close()


@pytest.fixture
def viewport() -> ViewportSize:
    """The window size; a test asks for a phone by overriding this fixture."""
    return WIDE


@pytest.fixture
async def context(browser: Browser, viewport: ViewportSize) -> AsyncIterator[BrowserContext]:
    """A fresh profile per test: empty localStorage, no cookies."""
    ctx = await browser.new_context(viewport=viewport)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    """A tab that fails the test on any uncaught script error or console error (a CSP
    violation included). Failed requests are left out: some tests provoke 401s and 429s,
    and the page must show those, which the tests check."""
    tab = await context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda err: problems.append(f"uncaught error: {err}"))
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console.{msg.type}: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield tab
    assert not problems, f"the page reported errors: {problems}"
