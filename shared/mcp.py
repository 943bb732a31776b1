"""Configuration of the MCP servers whose tools the worker offers the model: one
`McpServerConfig` per entry of MCP_SERVERS (a JSON list), typed as `McpServers`."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_validator

# The name prefixes the server's tool names (mcp__<name>__<tool>), so it stays short and
# within what OpenAI allows in a function name.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class McpServerConfig(BaseModel):
    """One MCP server: streamable HTTP (`url`) or a stdio subprocess (`command`)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    url: HttpUrl | None = None
    # SECRET: headers usually carry credentials (Authorization). Never log them; repr=False
    # keeps them out of repr(), str() and validation tracebacks of the settings.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    command: list[str] | None = Field(default=None, min_length=1)
    # SECRET: like headers, a stdio server's environment often holds its API keys.
    env: dict[str, str] = Field(default_factory=dict, repr=False)
    approval: bool = True  # calls wait for a person's approval unless this is false
    timeout_seconds: float = Field(30, gt=0, le=600)

    @model_validator(mode="after")
    def _check(self) -> Self:
        who = f"MCP server {self.name!r}"
        # A checked-here message is clearer than the bare regex pydantic would report.
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"{who}: name must be 1-32 letters, digits, '_' or '-' (it prefixes tool names)"
            )
        if (self.url is None) == (self.command is None):
            raise ValueError(f"{who}: set exactly one of url or command")
        # Settings that would silently do nothing are more likely a mistake than intended.
        if self.url is None and self.headers:
            raise ValueError(f"{who}: headers apply only to a url server")
        if self.command is None and self.env:
            raise ValueError(f"{who}: env applies only to a command server")
        if self.command is not None and not self.command[0]:
            raise ValueError(f"{who}: command must start with the program to run")
        return self


def check_unique(servers: list[McpServerConfig]) -> list[McpServerConfig]:
    """Names prefix tool names, so two servers with one name would shadow each other."""
    seen: set[str] = set()
    for server in servers:
        if server.name in seen:
            raise ValueError(f"MCP server name {server.name!r} is used more than once")
        seen.add(server.name)
    return servers


# The type of a Settings field holding MCP_SERVERS.
McpServers = Annotated[list[McpServerConfig], AfterValidator(check_unique)]
