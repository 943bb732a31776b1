"""Load tests of the chat API, runnable against any deployment:

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --scenario high --headless

Scenarios (`--scenario`, or CHATBOT_SCENARIO): baseline, sequential, concurrent, high,
sustained, scale, llm1s, llm1s-direct, and the streaming variants (baseline-stream,
sequential-stream, concurrent-stream, high-stream) that measure the time to first token
over SSE, with sequential-stream-direct as their direct-path counterpart, and
tools-sequential and tools, the same as sequential-stream and high-stream for a gateway
with TOOL_CALLING on (`chatbot bench` has its fake model call two searches each turn;
each record keeps the turn's calls). Their sizes are in `loadtest/scenarios/catalog.py`,
and each can be overridden (`--scenario-users`, ...).
The scenario sets the user count and ends the run when every user has played its part, so
`-u`, `-r` and `-t` are not needed.

Auth: CHATBOT_TOKEN (one bearer token for every user), or CHATBOT_JWT_SECRET (the
gateway's JWT_SECRET: one token per simulated user), or neither for a gateway in dev mode.
`chatbot bench` runs these scenarios against a stack it starts on this machine.
"""

from __future__ import annotations

from locust import events

from loadtest.scenarios.users import ChatUser, ScenarioShape, add_options

__all__ = ["ChatUser", "ScenarioShape"]


events.init_command_line_parser.add_listener(add_options)  # type: ignore[no-untyped-call]
