"""PII_REDACTION=logs+prompts through the public API: messages holding each kind of
personal data reach the fake provider as placeholders, no log line of the gateway or
the worker holds them (at DEBUG, where the OpenAI client logs every request body), and
the reply its owner reads has the originals back."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import httpx
import pytest
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.logging import JsonFormatter
from tests.shared.test_pii import CORPUS


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"pii_redaction": "logs+prompts"})


@pytest.fixture
def logs(settings: Settings) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Every log line at DEBUG, formatted as the service writes them: with its redaction,
    and (to show what it removed) without."""
    outs = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(out) for out in outs]
    handlers[0].setFormatter(JsonFormatter(settings.pii_in_logs))
    handlers[1].setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield outs
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


async def test_personal_data_stays_out_of_prompts_and_logs(
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    logs: tuple[io.StringIO, io.StringIO],
) -> None:
    for i, (_, text, _) in enumerate(CORPUS):
        resp = await alice.post(f"/sessions/pii-{i}/messages", json={"text": text})
        assert resp.status_code == 200, resp.text
        turn = resp.json()
        assert turn["reply"] == f"Fake reply to: {text}"  # the owner sees the originals
        history = (await alice.get(f"/sessions/pii-{i}/messages")).json()["items"]
        assert history[-1]["content"] == turn["reply"]
    sent = str([r["body"] for r in llm.requests])
    written, unredacted = (out.getvalue() for out in logs)
    # Without redaction the lines would hold them: the SDK logs activity results at DEBUG.
    assert [v for _, _, v in CORPUS if v in unredacted]
    leaked = [v for _, _, v in CORPUS if v in sent or v in written]
    assert leaked == []
    assert "[EMAIL_1]" in sent and "[CARD_1]" in sent and "[IBAN_1]" in sent


def test_logs_mode_keeps_prompts_as_written(settings: Settings) -> None:
    only_logs = settings.model_copy(update={"pii_redaction": "logs"})
    assert only_logs.pii_in_logs is not None and only_logs.pii_in_prompts is None


async def test_a_reply_ending_in_what_might_start_a_placeholder_keeps_its_end(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    # The restorer holds back a trailing `[` until it knows it is no placeholder; the
    # stream's end gives it back.
    llm.script({"endpoint": "chat", "reply": "I will write to [EMAIL_1] [see note [2"})
    resp = await alice.post("/sessions/pii-end/messages", json={"text": "Mail ana@example.com"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["reply"] == "I will write to ana@example.com [see note [2"
