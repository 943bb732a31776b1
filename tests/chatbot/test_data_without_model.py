"""A data question where no model can query the data (TOOL_CALLING off, as `chatbot dev`
runs on its local model): the reply says plainly, in the user's language, that it needs
a configured model, and no model is asked to guess the numbers. Other questions go on to
the model as before."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.data_support import with_sample_data
from workflows.tools import NO_DATA_MODEL_REPLY

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def settings(settings: Settings) -> Settings:
    assert not settings.tool_calling_enabled
    return await with_sample_data(settings, tool_calling=False)


async def ask(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
    session = f"d-{uuid.uuid4().hex[:8]}"
    resp = await client.post(f"/sessions/{session}/messages", json={"text": question})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def chat_requests(llm: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [r for r in llm.requests if r["endpoint"] == "chat"]


@pytest.mark.parametrize(
    ("question", "lang"),
    [
        ("How many machines need preventive maintenance this month?", "en"),
        ("¿Cuántas máquinas necesitan mantenimiento preventivo este mes?", "es"),
    ],
)
async def test_a_data_question_is_told_plainly_what_it_needs(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, question: str, lang: str
) -> None:
    turn = await ask(alice, question)
    assert turn["status"] == "complete"
    assert turn["reply"] == NO_DATA_MODEL_REPLY[lang]
    assert chat_requests(llm) == []  # no model asked to make the numbers up
    assert turn["tool_results"] == []


async def test_other_questions_still_reach_the_model(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.script({"endpoint": "chat", "reply": "Eight.", "times": 1})
    turn = await ask(alice, "How many legs does a spider have?")
    assert turn["reply"] == "Eight."
    assert len(chat_requests(llm)) == 1
