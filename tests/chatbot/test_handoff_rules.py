"""HANDOFF_AFTER_FAILURES: that many failed turns in a row hand the session to a person
(source `rule`, the last error as the reason); a turn that works resets the count."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"handoff_after_failures": 2})


def fail() -> dict[str, object]:
    """The provider refusing the reply's request: the turn fails at once (a 400 is not
    retried)."""
    return {"endpoint": "chat", "stream": True, "status": 400, "message": "bad request"}


async def test_two_failed_turns_in_a_row_hand_the_session_over(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    session = f"hr-{uuid.uuid4().hex[:8]}"
    llm.script(fail(), {"endpoint": "chat", "stream": True, "reply": "fine"}, fail(), fail())
    first = await alice.post(f"/sessions/{session}/messages", json={"text": "hello there"})
    assert first.status_code == 502, first.text
    assert (await alice.post(f"/sessions/{session}/messages", json={"text": "how are you"})).json()[
        "reply"
    ] == "fine"  # resets the count
    assert (await alice.get(f"/sessions/{session}")).json()["handoff"] is None
    for text in ("tell me a story", "and another one"):
        assert (
            await alice.post(f"/sessions/{session}/messages", json={"text": text})
        ).status_code == 502
    handoff = (await alice.get(f"/sessions/{session}")).json()["handoff"]
    assert handoff["state"] == "waiting" and handoff["source"] == "rule"
    assert handoff["reason"].startswith("2 turns in a row failed")
