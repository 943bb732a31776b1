"""ChatSessionWorkflow: one long-lived workflow per chat session (`chat-{session_id}`).

Deterministic only: no I/O, clocks or randomness except through `workflow.*`."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.llm import LlmActivities
    from shared.models import (
        ChatMessage,
        GenerateReplyInput,
        SendMessage,
        SessionStart,
        TurnResult,
    )
    from workflows import policies

SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely."
RECENT_TURNS = 10


def workflow_id(session_id: str) -> str:
    return f"chat-{session_id}"


@workflow.defn
class ChatSessionWorkflow:
    @workflow.init
    def __init__(self, start: SessionStart) -> None:
        self._start = start
        self._recent: list[ChatMessage] = []
        self._turn_lock = asyncio.Lock()  # turns run one at a time, in arrival order
        self._turns = 0

    @workflow.run
    async def run(self, start: SessionStart) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    async def send_message(self, msg: SendMessage) -> TurnResult:
        async with self._turn_lock:
            turn_id = str(workflow.uuid4())
            messages = [
                ChatMessage(role="system", content=SYSTEM_PROMPT),
                *self._recent[-2 * RECENT_TURNS :],
                ChatMessage(role="user", content=msg.text),
            ]
            started = workflow.time()
            reply = await workflow.execute_activity_method(
                LlmActivities.generate_reply,
                GenerateReplyInput(turn_id=turn_id, messages=messages),
                start_to_close_timeout=policies.GENERATE_TIMEOUT,
                heartbeat_timeout=policies.GENERATE_HEARTBEAT,
                retry_policy=policies.LLM_RETRY,
            )
            self._recent += [messages[-1], ChatMessage(role="assistant", content=reply.text)]
            self._recent = self._recent[-2 * RECENT_TURNS :]
            self._turns += 1
            return TurnResult(
                turn_id=turn_id,
                session_id=self._start.session_id,
                reply=reply.text,
                usage=reply.usage,
                timings_ms={"generate_reply": (workflow.time() - started) * 1000},
            )

    @send_message.validator
    def _validate_send_message(self, msg: SendMessage) -> None:
        if not msg.text.strip():
            raise ValueError("message text is empty")
