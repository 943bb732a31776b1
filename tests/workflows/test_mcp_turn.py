"""An MCP server's tools in a whole turn: MCP_SERVERS names a real server (built with the
same `mcp` SDK, over streamable HTTP), the worker lists its tools and offers them to the
model with their schemas, the model's calls run as activities against the server, once
each, with or without a person's approval as the server is configured."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer, ToolCallStep
from shared.config import Settings
from shared.mcp import McpServerConfig
from tests.support_mcp import RunningMcpServer, serve_mcp_http
from tests.workflows.tool_support import (
    answer,
    calls,
    decide,
    enable_tool_calling,
    model_requests,
    start_turn,
    until,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def mcp_server() -> Iterator[RunningMcpServer]:
    with serve_mcp_http() as server:
        yield server


@pytest.fixture(autouse=True)
def _mcp_tools(settings: Settings, mcp_server: RunningMcpServer) -> None:
    """Before the worker is built: `orders` runs without approval, `shop` needs it."""
    enable_tool_calling(settings)
    settings.mcp_servers = [
        McpServerConfig(name="orders", url=mcp_server.url, approval=False),
        McpServerConfig(name="shop", url=mcp_server.url),
    ]


async def test_mcp_tools_are_offered_and_called_once_each(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, mcp_server: RunningMcpServer
) -> None:
    llm.script(
        calls(
            ToolCallStep(name="mcp__orders__lookup_order", arguments={"order_id": "A17"}),
            ToolCallStep(name="mcp__orders__add", arguments={"a": 2, "b": 40}),
        ),
        answer("Order A17 has shipped; 2 + 40 is 42."),
    )
    resp = await alice.post("/sessions/mcp1/messages", json={"text": "Where is order A17?"})
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["reply"] == "Order A17 has shipped; 2 + 40 is 42."
    by_name = {c["name"]: c for c in result["tool_calls"]}
    assert by_name["mcp__orders__lookup_order"]["status"] == "ok"
    assert by_name["mcp__orders__lookup_order"]["content"] == "order A17: shipped"
    assert by_name["mcp__orders__add"]["content"] == "42"
    assert not any(c["needs_approval"] for c in result["tool_calls"])
    # In parallel, so in either order; once each.
    assert sorted(mcp_server.calls) == [
        ("add", {"a": 2, "b": 40}),
        ("lookup_order", {"order_id": "A17"}),
    ]
    first, second = model_requests(llm)
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert {"mcp__orders__add", "mcp__shop__add", "search_companies"} <= set(offered)
    schema = offered["mcp__orders__add"]["parameters"]
    assert schema["properties"].keys() == {"a", "b"} and schema["required"] == ["a", "b"]
    assert offered["mcp__orders__add"]["description"] == "[orders] Add two integers."
    results = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert sorted(results) == ["42", "order A17: shipped"]


async def test_an_mcp_tool_needing_approval_waits_and_its_failure_reaches_the_model(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, mcp_server: RunningMcpServer
) -> None:
    llm.script(
        calls(ToolCallStep(name="mcp__shop__lookup_order", arguments={"order_id": "missing"})),
        answer("I could not find that order."),
    )
    turn_id = await start_turn(alice, "mcp2", "Where is my order 'missing'?")
    asked = (await until(alice, turn_id, "approval_required"))[-1]
    assert asked.type == "approval_required", asked
    assert asked.data["call"]["arguments"] == {"order_id": "missing"}
    assert mcp_server.calls == []  # nothing runs before the decision
    resp = await decide(alice, "mcp2", turn_id, asked.data["call"]["id"], "approve")
    assert resp.status_code == 200, resp.text
    final = (await until(alice, turn_id, "final"))[-1]
    assert final.data["result"]["reply"] == "I could not find that order."
    [call] = final.data["result"]["tool_calls"]
    assert call["status"] == "error" and "order missing not found" in call["content"]
    assert mcp_server.count("lookup_order") == 1  # a failed MCP call is not retried
    told = [m for m in model_requests(llm)[1]["messages"] if m["role"] == "tool"]
    assert len(told) == 1 and "order missing not found" in told[0]["content"]
