"""The API against its own OpenAPI document: schemathesis generates requests from
`/openapi.json` (examples, boundary values, fuzzed and deliberately invalid data, stateful
sequences) and sends them to the real gateway on a real port, backed by a real worker,
Temporal, Postgres, Redis and the fake OpenAI server, with every check on.

Not covered here, because OpenAPI cannot describe it: the WebSocket route (not in the
document at all) and the web UI's static files (`include_in_schema=False`)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from temporalio.worker import Worker

from shared.config import Settings
from tests.chatbot.api_support import auth

pytestmark = pytest.mark.timeout(300)

# Small on purpose: the run must stay around two minutes on two shared cores. The coverage
# phase adds its boundary values on top of these per operation, whatever this says.
MAX_EXAMPLES = 4
# A fixed seed makes a failure reproducible run after run (the report names the request).
SEED = 15


def _config(token: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "workers": 2,
            # A turn waits for its reply; the fake model answers in milliseconds.
            "request-timeout": 30,
            # SSE replies end with `final`; a stream that somehow did not would otherwise
            # hold the run until the request timeout.
            "max-stream-events": 200,
            "auth": {"openapi": {"HTTPBearer": {"bearer": token}}},
            "checks": {"enabled": True},
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all"},
            "phases": {"stateful": {"max-steps": 6}},
        }
    )


@dataclass
class Report:
    examples: int = 0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    by_check: Counter[str] = field(default_factory=Counter)


def _run(base_url: str, token: str) -> Report:
    """The whole schemathesis run, as its CLI would do it, collected into one report."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=_config(token))
    report = Report()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            report.examples += len(event.recorder.cases)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        report.by_check[check.name] += 1
                        failure = check.failure_info.failure
                        report.failures.append(
                            f"[{check.name}] {event.recorder.label}: {failure.title}\n"
                            f"{failure.message}\n{check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.format(base_url_is_set=True)}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return report


async def test_the_api_keeps_its_openapi_contract(
    worker: Worker, gateway: str, settings: Settings
) -> None:
    import asyncio

    token = auth(settings, "contract")["Authorization"].removeprefix("Bearer ")
    started = time.monotonic()
    # The engine is synchronous; the worker runs on this event loop meanwhile.
    report = await asyncio.to_thread(_run, gateway, token)
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {report.examples} examples in {elapsed:.0f} s")
    unique = sorted(set(report.failures))
    assert not report.errors, "\n\n".join(report.errors)
    assert not unique, f"{dict(report.by_check)}\n\n" + "\n\n".join(unique)
