"""The tools a model may call: each a name, a description, an argument schema, whether it
has side effects and needs a person's approval, its timeout and retry bound. Built-in
tools come from activities/tools/builtin.py, MCP servers' tools from MCP_SERVERS."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from activities.tools import mcp
from shared.mcp import McpServerConfig
from shared.tool_calls import (
    MAX_ARGUMENT_CHARS,
    ToolCall,
    ToolCallOutput,
    ToolCatalog,
    ToolSpec,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolContext:
    """Who a call runs for, and the key it must write anything under (turn id + index)."""

    turn_id: str
    session_id: str
    user_id: str
    idempotency_key: str


Runner = Callable[[dict[str, Any], ToolContext], Awaitable[ToolCallOutput]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments, as offered to the model
    run: Runner
    check: Callable[[dict[str, Any]], dict[str, Any]]  # raises ValueError for bad arguments
    side_effects: bool = False
    needs_approval: bool = False
    timeout_seconds: float = 30.0
    max_attempts: int = 3
    source: str = "builtin"

    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self.name,
            description=self.description,
            side_effects=self.side_effects,
            needs_approval=self.needs_approval,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            source=self.source,
        )

    def openai(self) -> dict[str, Any]:
        function = {"name": self.name, "description": self.description}
        return {"type": "function", "function": {**function, "parameters": self.parameters}}


def pydantic_tool(
    name: str,
    description: str,
    args: type[BaseModel],
    run: Callable[[Any, ToolContext], Awaitable[ToolCallOutput]],
    **options: Any,
) -> Tool:
    """A tool whose arguments are a pydantic model: its JSON Schema is what the model sees,
    and the model's arguments are checked against it before anything runs."""

    def check(raw: dict[str, Any]) -> dict[str, Any]:
        return args.model_validate(raw).model_dump(mode="json")

    async def call(raw: dict[str, Any], ctx: ToolContext) -> ToolCallOutput:
        return await run(args.model_validate(raw), ctx)

    schema = args.model_json_schema()
    schema.pop("title", None)
    return Tool(name, description, schema, call, check, **options)


def _problem(err: ValidationError) -> str:
    issues = [
        f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in err.errors()
    ]
    return "invalid arguments: " + "; ".join(issues)


class ToolRegistry:
    """Built-in tools plus those the MCP servers list (refreshed every `mcp_refresh`)."""

    def __init__(
        self,
        builtins: Iterable[Tool],
        *,
        mcp_servers: Iterable[McpServerConfig] = (),
        auto_approve: Iterable[str] = (),
        mcp_refresh_seconds: float = 300.0,
    ) -> None:
        self._auto_approve = set(auto_approve)
        self._builtins = {t.name: self._approval(t) for t in builtins}
        self._servers = list(mcp_servers)
        self._mcp: dict[str, Tool] = {}
        self._refresh_seconds = mcp_refresh_seconds
        self._refreshed_at: float | None = None
        self._refreshing = asyncio.Lock()
        self._listing: asyncio.Task[None] | None = None

    def start_listing(self) -> None:
        """List the MCP servers' tools now, in the background (a worker starting: a server
        that cannot be reached is logged at once), not in the first turn that asks. Without
        a running event loop the first turn lists them."""
        if not self._servers or self._listing is not None:
            return
        try:
            self._listing = asyncio.get_running_loop().create_task(self.refresh_if_stale())
        except RuntimeError:
            return

    def _approval(self, tool: Tool) -> Tool:
        if tool.name in self._auto_approve:
            return replace(tool, needs_approval=False)
        return tool

    @property
    def tools(self) -> dict[str, Tool]:
        return {**self._mcp, **self._builtins}

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    async def catalog(self) -> ToolCatalog:
        await self.refresh_if_stale()
        return ToolCatalog(tools=[t.spec() for t in self.tools.values()])

    def openai_tools(self, names: Iterable[str]) -> list[dict[str, Any]]:
        tools = self.tools
        return [tools[n].openai() for n in names if n in tools]

    def parse_call(self, call_id: str, name: str, raw: str) -> ToolCall:
        """The model's call, its arguments parsed and checked; `problem` says what is wrong
        (the model is told, and may try again)."""
        call = ToolCall(id=call_id[:200], name=name[:200], raw_arguments=raw[:MAX_ARGUMENT_CHARS])
        tool = self.get(name)
        if tool is None:
            call.problem = f"there is no tool named {name!r}"
            return call
        try:
            parsed = json.loads(raw or "{}")
        except ValueError as err:
            call.problem = f"the arguments are not valid JSON ({err})"
            return call
        if not isinstance(parsed, dict):
            call.problem = "the arguments must be a JSON object"
            return call
        try:
            call.arguments = tool.check(parsed)
        except ValidationError as err:
            call.arguments, call.problem = parsed, _problem(err)
        except ValueError as err:
            call.arguments, call.problem = parsed, f"invalid arguments: {err}"
        return call

    def _stale(self) -> bool:
        at = self._refreshed_at
        return bool(self._servers) and (
            at is None or time.monotonic() - at >= self._refresh_seconds
        )

    async def refresh_if_stale(self) -> None:
        if not self._stale():
            return
        async with self._refreshing:
            if self._stale():  # not refreshed by another turn meanwhile
                await self.refresh()

    async def refresh(self) -> None:
        """List every MCP server's tools; a server that cannot be reached keeps the tools
        it listed last time (a call to it then fails as a tool error the model sees)."""
        found: dict[str, Tool] = {}
        listed = await asyncio.gather(
            *(mcp.list_tools(s) for s in self._servers), return_exceptions=True
        )
        for server, tools in zip(self._servers, listed, strict=True):
            if isinstance(tools, BaseException):
                log.warning("MCP server %s: tools not listed: %s", server.name, tools)
                found.update(
                    {k: t for k, t in self._mcp.items() if t.source == f"mcp:{server.name}"}
                )
                continue
            for tool in tools:
                found[tool.qualified_name] = self._approval(_mcp_tool(server, tool))
        self._mcp = found
        self._refreshed_at = time.monotonic()


def _mcp_tool(server: McpServerConfig, listed: mcp.McpTool) -> Tool:
    async def run(args: dict[str, Any], ctx: ToolContext) -> ToolCallOutput:
        result = await mcp.call_tool(server, listed.name, args)
        return ToolCallOutput(ok=not result.is_error, content=result.text)

    schema = listed.input_schema or {"type": "object", "properties": {}}
    return Tool(
        name=listed.qualified_name,
        description=f"[{server.name}] {listed.description}".strip(),
        parameters=schema,
        run=run,
        check=dict,  # the MCP server checks its own arguments and says what is wrong
        side_effects=True,  # unknown: an MCP tool may write anything
        needs_approval=server.approval,
        timeout_seconds=server.timeout_seconds,
        max_attempts=1,  # it may not be idempotent: never run it again by itself
        source=f"mcp:{server.name}",
    )
