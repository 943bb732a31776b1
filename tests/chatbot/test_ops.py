"""Operators' view: search attributes, readable history, no secrets, `chatbot ops`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import uuid

import httpx
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client
from temporalio.worker import Worker

from shared import search_attributes as sa
from shared.config import Settings
from shared.models import workflow_id
from tests.chatbot.api_support import auth
from tests.support import assert_eventually
from tests.workflows.test_tools import sample_companies
from workflows.chat_session import ChatSessionWorkflow

__all__ = ["sample_companies"]  # a fixture, used by name


async def _ops(settings: Settings, *args: str, database: bool = True) -> tuple[int, str, str]:
    assert settings.database_url is not None
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "TEMPORAL_ADDRESS": settings.temporal_address,
    }
    if database:
        env["DATABASE_URL"] = settings.database_url.get_secret_value()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatbot",
        "ops",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode or 0, out.decode(), f"{args}: {err.decode()}"


async def _talk(gateway: str, settings: Settings, user: str, sid: str, *texts: str) -> None:
    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, user), timeout=60
    ) as client:
        for text in texts:
            resp = await client.post(f"/sessions/{sid}/messages", json={"text": text})
            assert resp.status_code == 200, resp.text


async def test_search_attributes_find_a_users_sessions(
    temporal_client: Client, worker: Worker, gateway: str, settings: Settings
) -> None:
    user = f"ops-{uuid.uuid4().hex[:6]}"
    await _talk(gateway, settings, user, f"{user}-a", "first", "second")
    await _talk(gateway, settings, user, f"{user}-b", "hello")
    query = f"{sa.USER_ID.name} = '{user}' AND {sa.STATUS.name} = 'active'"

    async def found() -> None:
        ids = sorted([wf.id async for wf in temporal_client.list_workflows(query)])
        assert ids == [workflow_id(f"{user}-a"), workflow_id(f"{user}-b")]

    await assert_eventually(found, within=20)
    handle = temporal_client.get_workflow_handle(workflow_id(f"{user}-a"))
    attrs = (await handle.describe()).typed_search_attributes
    # A busy session's turn attributes are upserted at most every TURN_ATTRIBUTES_EVERY:
    # the first turn's are there, the second's wait for the next one or a status change.
    assert attrs.get(sa.TURN_COUNT) == 1 and attrs.get(sa.LAST_INTENT) == "chat"
    await handle.signal(ChatSessionWorkflow.end_session)
    await asyncio.wait_for(handle.result(), 30)
    attrs = (await handle.describe()).typed_search_attributes
    assert attrs.get(sa.STATUS) == "ended" and attrs.get(sa.TURN_COUNT) == 2
    assert attrs.get(sa.LAST_ACTIVITY) is not None


async def test_history_reads_like_a_transcript_of_the_work(
    sample_companies: None,
    temporal_client: Client,
    worker: Worker,
    gateway: str,
    settings: Settings,
) -> None:
    sid = f"readable-{uuid.uuid4().hex[:6]}"
    await _talk(gateway, settings, "olga", sid, "Which suppliers make PCBs?")
    handle = temporal_client.get_workflow_handle(workflow_id(sid))
    desc = await handle.describe()
    assert await desc.static_summary() == f"Chat session {sid} of olga"
    assert "send_message" in (await desc.static_details() or "")
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "**Last turn**" in meta.current_details
    assert (
        "Which suppliers make PCBs?" in meta.current_details and "complete" in meta.current_details
    )
    summaries = []
    async for event in handle.fetch_history_events():
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
            summaries.append(json.loads(event.user_metadata.summary.data))
    assert "load the session's summary and recent turns from Postgres" in summaries
    assert "detect intent of “Which suppliers make PCBs?”" in summaries
    assert any(re.match(r"reply: intent: company_search \(0\.\d\d\)", s) for s in summaries), (
        summaries
    )
    assert any(s.startswith("company search: “") for s in summaries)
    assert any(s.startswith("persist turn: complete, ") for s in summaries)


def _payload_texts(node: object) -> list[str]:
    """Every payload's data in a history, decoded (history JSON holds it base64)."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("data"), str) and "metadata" in node:
            found.append(base64.b64decode(node["data"]).decode(errors="replace"))
        for value in node.values():
            found += _payload_texts(value)
    elif isinstance(node, list):
        for value in node:
            found += _payload_texts(value)
    return found


async def test_history_holds_no_configured_secret(
    temporal_client: Client, worker: Worker, gateway: str, settings: Settings
) -> None:
    sid = f"secrets-{uuid.uuid4().hex[:6]}"
    await _talk(gateway, settings, "pat", sid, "remember my account number 1234")
    history = await temporal_client.get_workflow_handle(workflow_id(sid)).fetch_history()
    raw = history.to_json()
    dump = raw + "\n".join(_payload_texts(json.loads(raw)))
    assert "remember my account number" in dump  # the scan does see inside payloads
    token = auth(settings, "pat")["Authorization"].split()[1]
    secrets = [token]
    for secret in (settings.openai_api_key, settings.jwt_secret):
        assert secret is not None
        secrets.append(secret.get_secret_value())
    for secret in secrets:
        assert secret not in dump


async def test_ops_commands_list_show_and_end(
    worker: Worker, gateway: str, settings: Settings
) -> None:
    user = f"opsy-{uuid.uuid4().hex[:6]}"
    sid = f"{user}-s"
    await _talk(gateway, settings, user, sid, "a first question")

    async def listed() -> str:
        code, out, err = await _ops(settings, "sessions", "--user", user, "--status", "active")
        assert code == 0, err
        assert sid in out
        return out

    out = await assert_eventually(listed, within=30)
    assert user in out and "Running" in out

    code, out, err = await _ops(settings, "show", sid)
    assert code == 0, err
    assert f"user      {user}" in out
    assert "a first question" in out and "Fake reply to: a first question" in out

    code, out, err = await _ops(settings, "end", sid)
    assert code == 0, err
    assert "ended" in out
    async with httpx.AsyncClient(base_url=f"{gateway}/v1", headers=auth(settings, user)) as c:
        refused = await c.post(f"/sessions/{sid}/messages", json={"text": "still there?"})
        assert refused.status_code == 409
        assert "ended by an operator" in refused.json()["error"]["message"]
        assert (await c.get(f"/sessions/{sid}")).json()["status"] == "ended"

    code, _, err = await _ops(settings, "end", sid)
    assert code == 1 and "is not running (its workflow is Completed)" in err
    code, out, err = await _ops(settings, "show", sid)
    assert code == 0 and "a first question" in out  # from Postgres now
    assert "turns     1," in out and "last turns:" in out and "no turns yet" not in out
    code, out, err = await _ops(settings, "show", sid, database=False)
    assert code == 0 and "turns     1," in out, err
    assert "set DATABASE_URL to see its stored turns" in out and "no turns yet" not in out


async def test_ops_fail_clearly(settings: Settings) -> None:
    code, _, err = await _ops(settings, "show", "no-such-session")
    assert code == 1 and "no session 'no-such-session'" in err
    code, _, err = await _ops(settings, "sessions", "--user", "x' OR '1'='1")
    assert code == 1 and "without quotes" in err
    code, _, err = await _ops(settings, "sessions", "--status", "sleeping")
    assert code == 2 and "invalid choice" in err


async def test_ops_usage_and_budget(worker: Worker, gateway: str, settings: Settings) -> None:
    user = f"spender-{uuid.uuid4().hex[:6]}"
    await _talk(gateway, settings, user, f"{user}-s", "what does this cost")
    code, out, err = await _ops(settings, "usage")
    assert code == 0, err
    line = next(row for row in out.splitlines() if row.startswith(user))
    assert int(line.split()[1].replace(",", "")) > 0  # tokens today
    code, out, err = await _ops(settings, "usage", "--user", user)
    assert code == 0 and f"{user}-s" in out and "of no limit" in out, err

    code, out, err = await _ops(settings, "budget", user, "--tokens-per-day", "5")
    assert code == 0 and "own budgets" in out and "5 tokens a day" in out, err
    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, user), timeout=60
    ) as client:
        refused = await client.post(f"/sessions/{user}-s/messages", json={"text": "again"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "budget_exceeded"
        code, out, err = await _ops(settings, "budget", user, "--default")
        assert code == 0 and "the BUDGET_* defaults" in out and "no limit a day" in out, err
        again = await client.post(f"/sessions/{user}-s/messages", json={"text": "again"})
        assert again.status_code == 200, again.text
    code, _, err = await _ops(settings, "budget", user, "--cost-per-day", "-1")
    assert code == 2 and "cannot be negative" in err
