"""The tool activities: the catalog a turn offers its model, and one call of one tool.
A call is an activity of its own, bounded by the tool's timeout and retry policy; what a
tool writes, it writes under the call's idempotency key, so a retry writes nothing new."""

from __future__ import annotations

import logging

from temporalio import activity

from activities.heartbeat import heartbeating
from activities.tools import mcp
from activities.tools.registry import ToolContext, ToolRegistry
from shared.logging import bind
from shared.tool_calls import MAX_TOOL_CONTENT_CHARS, ToolCallInput, ToolCallOutput, ToolCatalog

log = logging.getLogger(__name__)


class ToolActivities:
    def __init__(self, registry: ToolRegistry) -> None:
        self._registry = registry

    @activity.defn
    async def tool_catalog(self) -> ToolCatalog:
        return await self._registry.catalog()

    @activity.defn
    async def call_tool(self, req: ToolCallInput) -> ToolCallOutput:
        bind(turn_id=req.turn_id)
        tool = self._registry.get(req.call.name)
        if tool is None:  # gone since the catalog was read (an MCP server's list changed)
            return ToolCallOutput(ok=False, content=f"the tool {req.call.name!r} is not available")
        ctx = ToolContext(
            turn_id=req.turn_id,
            session_id=req.session_id,
            user_id=req.user_id,
            idempotency_key=req.idempotency_key,
        )
        try:
            async with heartbeating():  # a worker killed mid-call is noticed in seconds
                out = await tool.run(req.call.arguments, ctx)
        except mcp.McpUnavailable as err:
            # Not retried (an MCP tool may not be idempotent): the model is told.
            return ToolCallOutput(ok=False, content=str(err))
        except ValueError as err:  # the arguments, checked again where the tool runs
            return ToolCallOutput(ok=False, content=f"invalid arguments: {err}")
        log.info("tool called", extra={"tool": tool.name, "ok": out.ok})
        if len(out.content) > MAX_TOOL_CONTENT_CHARS:
            out.content = out.content[:MAX_TOOL_CONTENT_CHARS] + " [cut]"
        return out
