"""MCP tools against a real MCP server (the SDK's own, from tests/support_mcp.py) over
streamable HTTP and stdio: listing, calling, a tool's own error, an unreachable server,
and the MCP_SERVERS configuration."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from activities.tools.mcp import McpTool, McpUnavailable, call_tool, list_tools, qualified_name
from activities.tools.registry import ToolRegistry
from shared.mcp import McpServerConfig, McpServers
from tests.support import assert_eventually, free_port
from tests.support_mcp import RunningMcpServer, serve_mcp_http

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def http_server() -> Iterator[RunningMcpServer]:
    with serve_mcp_http() as server:
        yield server


@pytest.fixture(params=["http", "stdio"])
def config(request: pytest.FixtureRequest) -> McpServerConfig:
    if request.param == "http":
        server: RunningMcpServer = request.getfixturevalue("http_server")
        return McpServerConfig(name="shop", url=server.url)
    # PYTHONPATH, not the working directory, lets the child import tests.support_mcp.
    return McpServerConfig(
        name="shop",
        command=[sys.executable, "-m", "tests.support_mcp", "--stdio"],
        env={"PYTHONPATH": str(ROOT)},
    )


async def test_list_tools_gives_names_descriptions_and_schemas(config: McpServerConfig) -> None:
    tools = {t.name: t for t in await list_tools(config)}
    assert set(tools) == {"add", "lookup_order"}
    add = tools["add"]
    assert add.server == "shop" and add.description == "Add two integers."
    assert add.input_schema["type"] == "object"
    assert set(add.input_schema["properties"]) == {"a", "b"}
    assert add.input_schema["properties"]["a"]["type"] == "integer"
    assert set(tools["lookup_order"].input_schema["properties"]) == {"order_id"}
    assert add.qualified_name == "mcp__shop__add"


async def test_call_tool_returns_its_text(config: McpServerConfig) -> None:
    result = await call_tool(config, "add", {"a": 2, "b": 3})
    assert (result.text, result.is_error) == ("5", False)
    shipped = await call_tool(config, "lookup_order", {"order_id": "A1"})
    assert (shipped.text, shipped.is_error) == ("order A1: shipped", False)


async def test_a_tools_own_failure_is_an_error_result_not_an_exception(
    config: McpServerConfig,
) -> None:
    result = await call_tool(config, "lookup_order", {"order_id": "missing"})
    assert result.is_error
    assert "order missing not found" in result.text


async def test_each_call_runs_the_tool_exactly_once(http_server: RunningMcpServer) -> None:
    config = McpServerConfig(name="shop", url=http_server.url)
    before = http_server.count("add")
    await call_tool(config, "add", {"a": 40, "b": 2})
    assert http_server.count("add") == before + 1
    assert http_server.calls[-1] == ("add", {"a": 40, "b": 2})


async def test_an_unreachable_server_is_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens there
    config = McpServerConfig(
        name="gone",
        url=url,
        headers={"Authorization": "Bearer sekrit"},
        timeout_seconds=2,
    )
    started = time.monotonic()
    with pytest.raises(McpUnavailable, match="MCP server 'gone': listing tools failed") as listed:
        await list_tools(config)
    with pytest.raises(McpUnavailable, match="MCP server 'gone': calling tool 'add'"):
        await call_tool(config, "add", {"a": 1, "b": 2})
    assert time.monotonic() - started < 2
    assert "sekrit" not in str(listed.value)


async def test_a_server_that_never_answers_times_out() -> None:
    # Connections queue in the backlog and are never accepted: the request just hangs.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        config = McpServerConfig(name="mute", url=url, timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(McpUnavailable, match="MCP server 'mute'"):
            await list_tools(config)
        assert time.monotonic() - started < 5


async def test_a_command_that_cannot_start_is_unavailable() -> None:
    config = McpServerConfig(name="nope", command=[str(ROOT / "no-such-program")])
    with pytest.raises(McpUnavailable, match="MCP server 'nope': listing tools failed"):
        await list_tools(config)


def test_secrets_stay_out_of_the_configs_repr() -> None:
    http = McpServerConfig(
        name="s",
        url="http://h/mcp",
        headers={"Authorization": "Bearer sekrit"},
    )
    stdio = McpServerConfig(name="s", command=["srv"], env={"API_KEY": "sekrit"})
    for config in (http, stdio):
        assert "sekrit" not in repr(config) and "sekrit" not in str(config)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "x", "url": "http://h/mcp", "command": ["srv"]},
            "MCP server 'x': set exactly one of url or command",
        ),
        ({"name": "x"}, "MCP server 'x': set exactly one of url or command"),
        ({"name": "bad name", "url": "http://h/mcp"}, "name must be 1-32 letters"),
        ({"name": "x" * 33, "url": "http://h/mcp"}, "name must be 1-32 letters"),
        ({"name": "x", "command": []}, "at least 1 item"),
        ({"name": "x", "url": "not a url"}, "valid URL"),
        ({"name": "x", "command": ["srv"], "headers": {"A": "b"}}, "headers apply only to a url"),
        ({"name": "x", "url": "http://h/mcp", "env": {"A": "b"}}, "env applies only to a command"),
        ({"name": "x", "url": "http://h/mcp", "timeout_seconds": 0}, "greater than 0"),
        ({"name": "x", "url": "http://h/mcp", "typo": 1}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors_are_clear(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        McpServerConfig.model_validate(entry)


def test_server_names_must_be_unique() -> None:
    servers = TypeAdapter(McpServers)
    entries = [
        {"name": "a", "url": "http://h/mcp"},
        {"name": "b", "command": ["srv"]},
        {"name": "a", "command": ["other"]},
    ]
    with pytest.raises(ValidationError, match="MCP server name 'a' is used more than once"):
        servers.validate_python(entries)
    parsed = servers.validate_json('[{"name": "a", "url": "http://h/mcp"}]')
    assert parsed[0].approval is True and parsed[0].timeout_seconds == 30


def test_qualified_names_follow_openais_function_name_rule() -> None:
    assert qualified_name("shop", "add") == "mcp__shop__add"
    assert qualified_name("shop", "orders.get v2/ü") == "mcp__shop__orders_get_v2__"
    long = qualified_name("s" * 32, "t" * 64)
    assert len(long) == 64 and long.startswith("mcp__" + "s" * 32 + "__t")
    tool = McpTool(server="shop", name="a.b", description="", input_schema={})
    assert tool.qualified_name == "mcp__shop__a_b"


async def test_a_workers_registry_lists_the_servers_tools_when_it_starts(
    http_server: RunningMcpServer,
) -> None:
    registry = ToolRegistry([], mcp_servers=[McpServerConfig(name="shop", url=http_server.url)])
    calls_before = len(http_server.calls)  # the module's server: other tests called it
    assert registry.get("mcp__shop__add") is None  # nothing listed yet
    registry.start_listing()  # as build_worker does: no turn has asked for the catalog

    async def listed() -> None:
        assert registry.get("mcp__shop__add") is not None
        assert registry.get("mcp__shop__lookup_order") is not None

    await assert_eventually(listed, within=30)
    assert len(http_server.calls) == calls_before  # listing calls no tool
