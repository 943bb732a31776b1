"""A real MCP server for tests, built with the SDK's MCPServer: over streamable HTTP from a
background thread (`serve_mcp_http`), or over stdio as `python -m tests.support_mcp --stdio`.

Tools: `add(a, b)`, and `lookup_order(order_id)`, which fails (an isError result) for
order "missing". Every call is recorded in `calls`, so tests can tell a tool ran once.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from loadtest.fakes.runner import ServerThread


def build_server(calls: list[tuple[str, dict[str, Any]]] | None = None) -> MCPServer:
    """A fresh server (its HTTP session manager runs only once); calls are appended to
    `calls` as (tool name, arguments)."""
    record = calls if calls is not None else []
    server = MCPServer("test-mcp", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        record.append(("add", {"a": a, "b": b}))
        return a + b

    @server.tool()
    def lookup_order(order_id: str) -> str:
        """Look up an order's status."""
        record.append(("lookup_order", {"order_id": order_id}))
        if order_id == "missing":
            # ToolError becomes an isError result with this text (and no traceback logged).
            raise ToolError(f"order {order_id} not found")
        return f"order {order_id}: shipped"

    return server


@dataclass
class RunningMcpServer:
    url: str  # the streamable-HTTP endpoint, e.g. http://127.0.0.1:54321/mcp
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def count(self, tool: str) -> int:
        return sum(1 for name, _ in self.calls if name == tool)


@contextmanager
def serve_mcp_http() -> Iterator[RunningMcpServer]:
    """The test server on 127.0.0.1 and a free port, until the block ends."""
    calls: list[tuple[str, dict[str, Any]]] = []
    app = build_server(calls).streamable_http_app()
    # lifespan on: the app's lifespan runs the SDK's session manager.
    with ServerThread(app, lifespan="on") as thread:
        yield RunningMcpServer(url=f"{thread.url}/mcp", calls=calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stdio", action="store_true", help="serve over stdin/stdout")
    if not parser.parse_args().stdio:
        parser.error("only --stdio is supported from the command line")
    build_server().run("stdio")


if __name__ == "__main__":
    main()
