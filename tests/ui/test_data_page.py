"""A data question in the page, on the real gateway, worker and Postgres with the sample
maintenance data (the fake provider plays the chat model and the SQL model): the reply
shows the query's first rows as a table, its chart, the SQL, and downloads the CSV with
the bearer token; a reload draws the same from history."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from pathlib import Path

import pytest
from playwright.async_api import Page, ViewportSize, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from activities.sql.sample import SCHEMA
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.data_support import ask_tool, sql_reply, with_sample_data
from tests.ui.support import open_signed_in, shot
from tests.workflows.tool_support import answer

LAST_REPLY = "#message-list .msg.assistant >> nth=-1"
SCREENSHOT = Path("/tmp/data-answer.png")
BLOB = re.compile(r"^blob:")  # a chart fetched with the token, not a plain link
BY_MONTH = (
    "SELECT to_char(opened_on, 'YYYY-MM') AS month, count(*) AS orders "
    "FROM work_orders GROUP BY 1 ORDER BY 1"
)


@pytest.fixture
def viewport() -> ViewportSize:
    """Tall enough for the whole answer (table, chart, buttons) in one screenshot."""
    return {"width": 1280, "height": 1500}


@pytest.fixture
async def settings(settings: Settings) -> Settings:
    return await with_sample_data(settings, head_rows=5)


async def test_a_data_answer_shows_its_table_and_chart_and_downloads_the_csv(
    page: Page,
    gateway: str,
    settings: Settings,
    worker: Worker,
    llm: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:  # what the page must show, read independently
        months = (
            await conn.execute(
                text(
                    f"SELECT to_char(opened_on, 'YYYY-MM'), count(*) FROM {SCHEMA}.work_orders "
                    "GROUP BY 1 ORDER BY 1"
                )
            )
        ).all()
    assert len(months) > 5
    question = "How many work orders were opened each month? Show the trend."
    llm.script(
        ask_tool(question),
        sql_reply(BY_MONTH, chart="line", x="month", y="orders"),
        answer("Work orders per month are in the table and the chart below."),
    )
    await open_signed_in(page, gateway, settings, f"u-{uuid.uuid4().hex[:8]}")
    await page.locator("#message-input").fill(question)
    await page.locator("#message-input").press("Enter")

    reply = page.locator(LAST_REPLY)
    await expect(reply).to_have_attribute("data-state", "complete")
    data = reply.locator(".data")
    await expect(data.locator(".pill.warn")).to_have_text("sample data")
    table = data.locator(".data-table table")
    await expect(table.locator("thead th")).to_have_text(["month", "orders"])
    await expect(table.locator("caption")).to_have_text(f"The first 5 of {len(months)} rows")
    body = table.locator("tbody tr")
    await expect(body).to_have_count(5)
    for i, (month, count) in enumerate(months[:5]):
        await expect(body.nth(i).locator("td")).to_have_text([month, str(count)])
    await expect(body.first.locator("td.num")).to_have_count(1)  # the count, right-aligned

    chart = data.locator(".data-chart img")
    await expect(chart).to_be_visible()
    await expect(chart).to_have_attribute("src", BLOB)
    assert await chart.evaluate("img => img.complete && img.naturalWidth > 300")
    await data.locator(".data-sql summary").click()
    await expect(data.locator(".data-sql code")).to_contain_text("FROM work_orders")
    await page.screenshot(path=str(SCREENSHOT), animations="disabled")
    await shot(page, "data-answer")

    # The CSV holds every row (the table shows five), fetched with the token.
    async with page.expect_download() as pending:
        await data.get_by_role("button", name="Download result.csv").click()
    download = await pending.value
    assert download.suggested_filename == "result.csv"
    saved = await asyncio.to_thread(Path(await download.path()).read_text)
    rows = list(csv.reader(io.StringIO(saved)))
    assert rows[0] == ["month", "orders"]
    assert [(m, int(c)) for m, c in rows[1:]] == [(m, c) for m, c in months]
    await expect(data.get_by_role("button", name="Download chart.png")).to_be_visible()

    # From history: the same table and chart.
    await page.reload()
    reply = page.locator(LAST_REPLY)
    await expect(reply.locator(".data tbody tr")).to_have_count(5)
    await expect(reply.locator(".data-chart img")).to_have_attribute("src", BLOB)
