"""What the data tool's tests share: settings reading the sample maintenance data through
its reader role, and the fake provider's steps for a query_data call and the SQL model."""

from __future__ import annotations

import json
from typing import Any

from pydantic import SecretStr

from activities.sql.sample import load_sample, reader_url
from loadtest.fakes import Step
from shared.config import Settings
from shared.db.engine import create_engine
from tests.workflows.tool_support import ToolCallStep, calls, enable_tool_calling


async def with_sample_data(
    settings: Settings, *, tool_calling: bool = True, **update: Any
) -> Settings:
    """`settings` with the sample loaded (as the database's owner) and the data tool
    reading it as the reader role, tool calling on (or as the test's settings have it);
    `update` changes more settings."""
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    owner = create_engine(url, pool_size=1, max_overflow=0)
    try:
        await load_sample(owner)
    finally:
        await owner.dispose()
    reader = SecretStr(reader_url(url))
    changed = settings.model_copy(update={"data_database_url": reader, **update})
    if tool_calling:
        enable_tool_calling(changed)
    return changed


def sql_reply(sql: str, chart: str = "none", x: str = "", y: str = "") -> dict[str, Any]:
    """What the SQL model answers (a non-streamed structured reply)."""
    body = {"sql": sql, "chart": chart, "x": x, "y": y, "title": ""}
    return {"endpoint": "chat", "stream": False, "reply": json.dumps(body)}


def ask_tool(question: str) -> Step:
    """The chat model's round that calls query_data with `question`."""
    return calls(ToolCallStep(id="call_d1", name="query_data", arguments={"question": question}))
