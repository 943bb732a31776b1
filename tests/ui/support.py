"""What the web UI tests share: signing a tab in, screenshots, and the database."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page, expect
from sqlalchemy import text

from chatbot.auth import mint_token
from shared.config import Settings
from shared.db.engine import create_engine

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "ui"


def token_for(settings: Settings, user: str) -> str:
    assert settings.jwt_secret is not None
    return mint_token(settings.jwt_secret.get_secret_value(), user)


async def open_signed_in(page: Page, gateway: str, settings: Settings, user: str) -> None:
    """Open the page with `user`'s token already stored, as after a sign-in."""
    await page.goto(gateway)
    await page.evaluate("t => localStorage.setItem('chatbot.token', t)", token_for(settings, user))
    await page.reload()
    await expect(page.locator("#who")).to_have_text(f"Signed in as {user}")
    await expect(page.locator("#message-input")).to_be_enabled()


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), animations="disabled")  # transitions at their end
    return path


def open_session_id(page: Page) -> str:
    match = re.search(r"#s/([^/]+)$", page.url)
    assert match, f"no session in the page's URL {page.url}"
    return match.group(1)


async def execute(settings: Settings, sql: str, **params: object) -> None:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()
