"""Edit an earlier message and branch: a new session (its own workflow) whose first
prompt holds exactly the turns before the edited one, the original left as it was, both
linked. Real gateway, worker, Temporal, Postgres and Redis."""

from __future__ import annotations

import uuid

import httpx
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import auth, reply_prompts, say


async def _contents(client: httpx.AsyncClient, session: str) -> list[str]:
    resp = await client.get(f"/sessions/{session}/messages")
    assert resp.status_code == 200, resp.text
    return [m["content"] for m in resp.json()["items"]]


async def test_a_branch_starts_from_exactly_the_turns_before_the_edit(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    await alice.post("/sessions", json={"id": "br1", "title": "Trip"})
    await say(alice, "br1", "I am planning a trip to Lisbon")
    edited_turn = await say(alice, "br1", "what should I pack for rain?")
    await say(alice, "br1", "LATER-ONLY: and for a wedding?")
    before = await _contents(alice, "br1")

    made = await alice.post(
        f"/sessions/br1/turns/{edited_turn['turn_id']}/branch",
        json={"text": "what should I pack for sun?", "id": "br1-sun"},
    )
    assert made.status_code == 201, made.text
    branch = made.json()
    assert branch["session"]["id"] == "br1-sun"
    assert branch["session"]["parent_session_id"] == "br1"
    assert branch["session"]["branched_at_turn"] == edited_turn["turn_id"]
    assert branch["session"]["title"] == "Trip (edited)"
    assert branch["turn"]["reply"] == "Fake reply to: what should I pack for sun?"

    first_prompt = reply_prompts(llm)[-1]
    assert [m for m in first_prompt if m["role"] != "system"] == [
        {"role": "user", "content": "I am planning a trip to Lisbon"},
        {"role": "assistant", "content": "Fake reply to: I am planning a trip to Lisbon"},
        {"role": "user", "content": "what should I pack for sun?"},
    ]
    assert "LATER-ONLY" not in str(first_prompt)

    assert await _contents(alice, "br1-sun") == [
        "I am planning a trip to Lisbon",
        "Fake reply to: I am planning a trip to Lisbon",
        "what should I pack for sun?",
        "Fake reply to: what should I pack for sun?",
    ]
    assert await _contents(alice, "br1") == before  # the original is untouched
    assert (await alice.get("/sessions/br1-sun")).json()["turn_count"] == 2
    listed = (await alice.get("/sessions/br1/branches")).json()["items"]
    assert [s["id"] for s in listed] == ["br1-sun"]

    # The branch goes on as a session of its own.
    await say(alice, "br1-sun", "and shoes?")
    assert "LATER-ONLY" not in str(reply_prompts(llm)[-1])
    assert "what should I pack for sun?" in str(reply_prompts(llm)[-1])


async def test_branching_the_first_message_starts_empty(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    first = await say(alice, "br2", "hello")
    made = await alice.post(
        f"/sessions/br2/turns/{first['turn_id']}/branch?wait=false", json={"text": "hi there"}
    )
    assert made.status_code == 201, made.text
    branch = made.json()
    assert branch["turn"] is None and branch["events_url"].endswith(
        f"/turns/{branch['turn_id']}/events"
    )
    assert branch["session"]["title"] == "br2 (edited)"
    new = branch["session"]["id"]
    async with alice.stream("GET", f"/turns/{branch['turn_id']}/events") as stream:
        async for line in stream.aiter_lines():
            if line.startswith("event: final"):
                break
    assert await _contents(alice, new) == ["hi there", "Fake reply to: hi there"]


async def test_branches_are_the_owners_and_need_a_message_of_the_session(
    worker: Worker, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    turn = await say(alice, "br3", "hello")
    path = f"/sessions/br3/turns/{turn['turn_id']}/branch"
    assert (await bob.post(path, json={"text": "mine now"})).status_code == 404
    assert (await bob.get("/sessions/br3/branches")).status_code == 404
    unknown = f"/sessions/br3/turns/{uuid.uuid4()}/branch"
    assert (await alice.post(unknown, json={"text": "x"})).status_code == 404
    assert (await alice.post(path, json={"text": ""})).status_code == 422
    assert (await alice.post(path, json={"text": "a\u0000b"})).status_code == 422
    assert (await alice.post(path, json={"text": "ok", "id": "bad id!"})).status_code == 422
    assert (await alice.post(path, json={"text": "ok", "id": "br3"})).status_code == 409


async def test_a_branch_counts_against_the_rate_limit(
    worker: Worker, gateway: str, settings: Settings
) -> None:
    settings.rate_limit_per_minute = 1
    user = f"dora-{uuid.uuid4().hex[:6]}"  # a window of her own in the shared Redis
    async with httpx.AsyncClient(base_url=f"{gateway}/v1", headers=auth(settings, user)) as dora:
        turn = await say(dora, "br4", "hello")
        limited = await dora.post(
            f"/sessions/br4/turns/{turn['turn_id']}/branch", json={"text": "hi"}
        )
        assert limited.status_code == 429, limited.text
        assert (await dora.get("/sessions/br4/branches")).json()["items"] == []
