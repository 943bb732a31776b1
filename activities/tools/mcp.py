"""The client side of MCP tools: list a server's tools, and call one.

Every call opens its own session (connect, initialize, work, close): nothing to keep alive
or repair between calls, and a restarted worker or server needs no recovery. The whole
call is bounded by the server's `timeout_seconds`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client import Transport
from mcp.client._transport import TransportStreams  # not exported, but what a Transport yields
from mcp.client.streamable_http import streamable_http_client
from mcp.types import (
    CallToolResult,
    EmbeddedResource,
    ResourceLink,
    TextContent,
    TextResourceContents,
    Tool,
)
from pydantic import BaseModel

from shared.mcp import McpServerConfig

T = TypeVar("T")

# A server that keeps handing out cursors is cut off here (the timeout bounds it too).
MAX_PAGES = 100
# OpenAI's rule for function names, which qualified names must follow.
_NOT_IN_FUNCTION_NAME = re.compile(r"[^a-zA-Z0-9_-]")


class McpUnavailable(Exception):
    """The server could not be reached, timed out or broke the protocol. Its message names
    the server and what failed, never headers or env (they hold secrets)."""


def qualified_name(server: str, tool: str) -> str:
    """The name the model sees: unique across servers, and a valid OpenAI function name."""
    return _NOT_IN_FUNCTION_NAME.sub("_", f"mcp__{server}__{tool}")[:64]


class McpTool(BaseModel):
    server: str
    name: str  # the tool's own name on its server, used to call it
    description: str
    input_schema: dict[str, Any]  # JSON Schema of the arguments, as the server gives it

    @property
    def qualified_name(self) -> str:
        return qualified_name(self.server, self.name)


class McpCallResult(BaseModel):
    text: str
    is_error: bool  # the tool itself reported failure; `text` says why


async def list_tools(server: McpServerConfig) -> list[McpTool]:
    async def work(client: Client) -> list[McpTool]:
        tools: list[Tool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools += page.tools
            cursor = page.next_cursor
            if cursor is None:
                break
        return [
            McpTool(
                server=server.name,
                name=t.name,
                description=t.description or "",
                input_schema=t.input_schema,
            )
            for t in tools
        ]

    return await _with_session(server, "listing tools", work)


async def call_tool(server: McpServerConfig, name: str, arguments: dict[str, Any]) -> McpCallResult:
    async def work(client: Client) -> McpCallResult:
        result = await client.call_tool(name, arguments)
        return McpCallResult(text=_text(result), is_error=result.is_error)

    return await _with_session(server, f"calling tool {name!r}", work)


async def _with_session(
    server: McpServerConfig, what: str, work: Callable[[Client], Awaitable[T]]
) -> T:
    who = f"MCP server {server.name!r}"
    try:
        with anyio.fail_after(server.timeout_seconds):
            # No response cache: the client lives for this one call.
            async with Client(
                _transport(server), read_timeout_seconds=server.timeout_seconds, cache=None
            ) as client:
                return await work(client)
    except TimeoutError as err:
        raise McpUnavailable(f"{who}: {what} timed out after {server.timeout_seconds:g} s") from err
    # The SDK raises many kinds (MCPError, httpx2 and OS errors, task-group groups); all
    # mean the same to the caller. Cancellation is a BaseException, so it passes through.
    except Exception as err:
        raise McpUnavailable(f"{who}: {what} failed: {_describe(err)}") from err


def _transport(server: McpServerConfig) -> StdioServerParameters | Transport:
    if server.command is not None:
        program, *args = server.command
        return StdioServerParameters(command=program, args=args, env=server.env or None)
    return _http(server)


@asynccontextmanager
async def _http(server: McpServerConfig) -> AsyncIterator[TransportStreams]:
    # Our own httpx2 client, to send the configured headers and use the server's timeout.
    timeout = httpx2.Timeout(server.timeout_seconds)
    async with (
        httpx2.AsyncClient(headers=server.headers, timeout=timeout) as http,
        streamable_http_client(str(server.url), http_client=http) as streams,
    ):
        yield streams


def _describe(err: BaseException) -> str:
    # A task group wraps the real failure; the first leaf is the one worth naming.
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    text = str(err)
    return (f"{type(err).__name__}: {text}" if text else type(err).__name__)[:300]


def _text(result: CallToolResult) -> str:
    """What the model reads: the text parts; others summarized, as it cannot see them."""
    parts: list[str] = []
    has_text = False
    for block in result.content:
        match block:
            case (
                TextContent(text=text) | EmbeddedResource(resource=TextResourceContents(text=text))
            ):
                parts.append(text)
                has_text = True
            case EmbeddedResource(resource=resource):
                parts.append(f"[resource {resource.uri}]")
            case ResourceLink(uri=uri):
                parts.append(f"[resource {uri}]")
            case _:
                parts.append(f"[{block.type}]")  # [image], [audio]
    if result.structured_content is not None and not has_text:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)
