"""ChatSessionWorkflow: one long-lived workflow per chat session (`chat-{session_id}`).

A message is the `send_message` update. Turns run one at a time in arrival order:
detect_intent -> generate_reply (tokens stream to Redis) -> persist_turn. Idle for the
session's timeout, the workflow marks the session idle and completes; the next message
starts it again (update-with-start) and it reloads its context from Postgres. Long
sessions continue-as-new with bounded state.

Versioned, not patched: each run is Pinned to the worker build that started it and the
next run moves to the current build (workers/versioning.py, README "Changing the
workflow"), so this file describes one shape of the workflow and has no patch branches.

Deterministic only: no I/O, clocks or randomness except through `workflow.*`."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate, VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.intent import IntentActivities
    from activities.llm import LlmActivities
    from activities.memory import MemoryActivities, snippet
    from activities.sessions import SessionStore
    from activities.streams import StreamActivities
    from activities.tools.runner import ToolActivities
    from shared import findings
    from shared import search_attributes as sa
    from shared.models import (
        SEEN_MESSAGE_IDS,
        AgentReply,
        AgentTurn,
        CancelTurn,
        ChatMessage,
        ChosenVersion,
        ClaimHandoff,
        DetectIntentInput,
        FeedEvent,
        FeedKind,
        GeneratedReply,
        GenerateReplyInput,
        Handoff,
        PersistOutcome,
        PersistTurn,
        PersistVersion,
        PromptParts,
        RecordHandoff,
        Regenerate,
        ReleaseHandoff,
        RequestHandoff,
        Retrieved,
        RetrieveInput,
        SelectVersion,
        SendMessage,
        SessionRef,
        SessionStart,
        SessionState,
        SummarizeInput,
        TokenUsage,
        TurnEvent,
        TurnResult,
        turn_id_for,
    )
    from shared.tool_calls import ApprovalDecision, ApprovalOutcome
    from workflows import policies
    from workflows.approvals import Approvals
    from workflows.handoff import HandoffDesk
    from workflows.tool_turn import ToolTurn, ToolTurnOutcome
    from workflows.tools import (
        ToolOutcome,
        data_timings,
        fixed_reply,
        grounding,
        handoff_reply,
        router_hint,
        run_tools,
    )

SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer clearly and concisely, in the language of the "
    "user's message. You cannot browse the web: when asked for today's news, prices, "
    "weather or other current facts, say you cannot look them up; never guess them."
)
# With tools the model chooses (TOOL_CALLING): it may look things up, and asks before
# anything that acts on the user's behalf.
TOOLS_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer clearly and concisely, in the language of the "
    "user's message. Use the tools when they help: search the company directory for "
    "suppliers and partners, search the web for anything current; never guess current "
    "facts. Open a ticket or hand over to a person only when the user asks for it or "
    "clearly needs it; the user approves those first. Cite web sources as [n]."
)
DETAIL_CHARS = 80
# The shortest idle-timer wait, so a timer that fires a little early never spins.
MIN_IDLE_WAIT = timedelta(seconds=1)
# A busy session's turn count, last intent and last activity reach the Temporal UI (and
# `chatbot ops sessions`) at most this late; exact once it is idle, ended or continued.
TURN_ATTRIBUTES_EVERY = timedelta(seconds=30)
# How a step's failure reaches the workflow: an ActivityError, or, for a local activity
# that failed for good (non-retryable), its ApplicationError itself.
STEP_FAILED = (ActivityError, ApplicationError)
A = TypeVar("A")
R = TypeVar("R")


async def _best_effort(method: Callable[[Any, A], Awaitable[None]], arg: A, summary: str) -> None:
    """A publish to Redis as a local activity, retried until PUBLISH_DEADLINE, then given
    up (logged): readers find the stored state in Postgres."""
    try:
        await workflow.execute_local_activity_method(
            method,
            arg,
            start_to_close_timeout=policies.LOCAL_TIMEOUT,
            schedule_to_close_timeout=policies.PUBLISH_DEADLINE,
            retry_policy=policies.PUBLISH_RETRY,
            summary=summary,
        )
    except STEP_FAILED as err:
        workflow.logger.warning("%s not published: %s", summary, err.cause)


def _escalation(result: TurnResult) -> str | None:
    """The reason, when the turn ran escalate_to_human (approved, and it worked)."""
    for call in result.tool_calls:
        if call.get("name") == "escalate_to_human" and call.get("status") == "ok":
            arguments = call.get("arguments")
            reason = arguments.get("reason") if isinstance(arguments, dict) else None
            return str(reason or "the assistant handed over")[:500]
    return None


def _clip(text: str, limit: int = DETAIL_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


async def _store_step(
    method: Callable[[Any, A], Awaitable[R]],
    arg: A,
    start_to_close: timedelta,
    retry: RetryPolicy,
    summary: str,
) -> R:
    """A short database step, as a local activity (no task queue round trip), bounded by
    DB_DEADLINE in all."""
    return await workflow.execute_local_activity_method(
        method,
        arg,
        start_to_close_timeout=start_to_close,
        schedule_to_close_timeout=policies.DB_DEADLINE,
        retry_policy=retry,
        summary=summary,
    )


# Pinned: a run finishes on the worker build that started it, so a change to this code
# ships as a new build (workers/versioning.py) instead of a patch branch; the next run
# (continue-as-new, or the session's next start) begins on the current build.
@workflow.defn(versioning_behavior=VersioningBehavior.PINNED)
class ChatSessionWorkflow:
    @workflow.init
    def __init__(self, start: SessionStart) -> None:
        self._start = start
        self._loaded = start.loaded
        self._summary = start.summary
        self._summary_version = start.summary_version
        self._recent: list[ChatMessage] = list(start.recent)
        self._to_fold: list[ChatMessage] = list(start.to_fold)  # left the recent window
        self._seen: deque[str] = deque(start.seen_message_ids, maxlen=SEEN_MESSAGE_IDS)
        self._turns_total = start.turns_total
        self._last_turn = start.last_turn_id  # whose message and reply end _recent
        self._turns_this_run = 0
        self._turn_lock = asyncio.Lock()  # FIFO: turns run one at a time, in arrival order
        self._queued = 0
        self._running_turn: str | None = None
        self._activity_seq = 0
        self._idle_since = workflow.now()  # when the last turn ended (or the run began)
        self._ended = False
        self._fold_failed_at: int | None = None  # _activity_seq when a fold last failed
        self._approvals = Approvals()  # tool calls waiting for a person's decision
        self._handoff = HandoffDesk(start.handoff)  # with a person instead of the bot
        self._rearm = False  # the main loop's timer must be set again (a handoff began)
        self._failed_in_a_row = 0  # turns, for HANDOFF_AFTER_FAILURES
        self._cancelled: set[str] = set()  # turns asked to stop (cleared when they end)
        self._dropped: set[str] = set()  # stopped and rolled back: to leave no trace
        self._stoppable: str | None = None  # the running turn, until its reply is done
        self._published = 0  # events published by this run, each numbered (TurnEvent.seq)
        self._attributes_at: datetime | None = None  # when turn attributes were last upserted
        self._waiting_attributes: list[SearchAttributeUpdate[Any]] = []

    @property
    def _ref(self) -> SessionRef:
        return SessionRef(
            session_id=self._start.session_id,
            user_id=self._start.user_id,
            recent_turns=self._start.recent_turns,
        )

    @property
    def _window(self) -> int:
        """Messages kept verbatim: the recent turns, a user message and a reply each."""
        return 2 * self._start.recent_turns

    @workflow.run
    async def run(self, start: SessionStart) -> None:
        if not self._loaded:
            loaded = await _store_step(
                SessionStore.load_session,
                self._ref,
                policies.DB_TIMEOUT,
                policies.DB_RETRY,
                "load the session's summary and recent turns from Postgres",
            )
            self._summary, self._recent = loaded.summary, loaded.recent
            self._summary_version = loaded.summary_version
            self._seen.extend(loaded.seen_message_ids)
            self._turns_total = loaded.turns_total
            self._last_turn = loaded.last_turn_id
            self._handoff.current = loaded.handoff
            self._ended = self._ended or loaded.ended
            self._loaded = True
        idle = timedelta(seconds=start.idle_timeout_seconds)
        self._set_status("active")
        workflow.set_current_details(self._details("waiting for a message"))
        self._idle_since = workflow.now()
        while True:
            # The idle timer is armed once per idle period, not once per turn: a turn that
            # ends does not wake this loop (two timer events and a server timer task per
            # turn saved); when the timer fires after activity, it waits out the rest.
            try:
                await workflow.wait_condition(
                    lambda: (
                        self._ended or self._wants_new_run() or self._wants_fold() or self._rearm
                    ),
                    # A turn running (or waiting on a person) is not idleness: a whole
                    # period again, not a timer a second until it ends.
                    timeout=self._next_wake(idle),
                )
                if self._rearm:  # a handoff began: its SLA timer, from now
                    self._rearm = False
                    continue
            except TimeoutError:
                if await self._check_sla():
                    continue
                if self._handoff.active:
                    self._idle_since = workflow.now()  # with a person: never idle
                    continue
                if self._queued or self._idle_left(idle) > timedelta(0):
                    continue  # busy, or active since the timer was armed: not idle yet
                seen = self._activity_seq
                if self._to_fold:
                    # A restarted session reloads the summary and the recent turns only.
                    # If this fold fails, those turns stay retrievable from Postgres.
                    await self._fold()
                    if self._activity_seq != seen:
                        continue  # a message came in meanwhile: not idle
                if self._queued == 0:
                    await self._mark(
                        SessionStore.mark_idle, f"mark idle after {idle.total_seconds() / 60:g} min"
                    )
                    if (
                        self._queued == 0
                        and self._activity_seq == seen
                        and not self._handoff.active
                    ):
                        self._set_status("idle")
                        break
                continue
            if self._wants_fold():
                await self._fold()  # turns go on meanwhile, with these turns verbatim
                continue
            if self._ended:
                await workflow.wait_condition(lambda: self._queued == 0)
                self._set_status("ended")
                await self._mark(SessionStore.mark_ended, "mark the session ended")
                break
            if self._wants_new_run():
                await workflow.wait_condition(
                    lambda: self._queued == 0 and workflow.all_handlers_finished()
                )
                # The next run starts on the deployment's current build, not this one's:
                # runs stay short-lived, so a new build takes over within TURNS_PER_RUN
                # turns or an idle timeout, and old builds drain. It inherits the search
                # attributes, exact as of the last turn.
                self._flush_attributes()
                workflow.continue_as_new(
                    self._carried_state(start),
                    initial_versioning_behavior=(
                        workflow.ContinueAsNewVersioningBehavior.AUTO_UPGRADE
                    ),
                )
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _mark(self, method: Callable[[Any, SessionRef], Awaitable[None]], what: str) -> None:
        """Record the session's status in Postgres; a database away for longer than
        DB_DEADLINE leaves the old status there, and the workflow goes on."""
        try:
            await workflow.execute_activity_method(
                method,
                self._ref,
                start_to_close_timeout=policies.DB_TIMEOUT,
                schedule_to_close_timeout=policies.DB_DEADLINE,
                retry_policy=policies.DB_RETRY,
                summary=what,
            )
        except ActivityError as err:
            workflow.logger.warning("%s failed: %s", what, err.cause or err)

    def _next_wake(self, idle: timedelta) -> timedelta:
        """The loop's timer: the idle timeout, or sooner the handoff's SLA."""
        wake = idle if self._queued else max(self._idle_left(idle), MIN_IDLE_WAIT)
        sla = self._handoff.sla_left(self._sla, workflow.now())
        return wake if sla is None else min(wake, max(sla, MIN_IDLE_WAIT))

    @property
    def _sla(self) -> timedelta:
        return timedelta(seconds=self._start.handoff_sla_seconds)

    async def _check_sla(self) -> bool:
        """Nobody claimed the session in HANDOFF_SLA: the user is told (the handoff says
        so, with a ticket offered), once."""
        left = self._handoff.sla_left(self._sla, workflow.now())
        if left is None or left > timedelta(0):
            return False
        self._handoff.miss_sla()
        await self._save_handoff("no agent within the SLA")
        return True

    async def _save_handoff(self, what: str) -> None:
        """Postgres's copy, for the queue; the workflow's state is the truth meanwhile."""
        req = RecordHandoff(ref=self._ref, handoff=self._handoff.current)
        try:
            await _store_step(
                SessionStore.record_handoff,
                req,
                policies.DB_TIMEOUT,
                policies.DB_RETRY,
                f"handoff: {what}",
            )
        except STEP_FAILED as err:
            workflow.logger.warning("handoff not recorded: %s", err.cause or err)
        self._set_status("handoff" if self._handoff.active else "active")
        current = self._handoff.current
        await self._to_feed(
            "handoff", {"handoff": current.model_dump(mode="json") if current else None}
        )

    async def _to_feed(self, kind: FeedKind, data: dict[str, Any]) -> None:
        """Tell the user's open page (the session's feed); best effort, as turn events."""
        event = FeedEvent(session_id=self._start.session_id, kind=kind, data=data)
        await _best_effort(StreamActivities.publish_feed_event, event, f"feed: {kind}")

    def _idle_left(self, idle: timedelta) -> timedelta:
        """How much longer the session must stay quiet to count as idle."""
        return idle - (workflow.now() - self._idle_since)

    def _wants_new_run(self) -> bool:
        return self._queued == 0 and (
            self._turns_this_run >= self._start.turns_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    def _wants_fold(self) -> bool:
        if not self._to_fold:
            return False
        # After a failed fold, the next try waits for the next turn to end: a model that
        # refuses or is down is not asked again in a loop.
        retry_later = self._fold_failed_at == self._activity_seq
        return len(self._to_fold) >= 2 * self._fold_batch and not retry_later

    @property
    def _fold_batch(self) -> int:
        """Turns folded together: half the recent window, so the summary is asked for a
        fifth as often with 10 recent turns, and at most that many wait verbatim."""
        return max(1, self._start.recent_turns // 2)

    async def _fold(self) -> None:
        """Fold the turns that left the recent window into the rolling summary."""
        turns = list(self._to_fold)
        try:
            folded = await workflow.execute_activity_method(
                MemoryActivities.summarize,
                SummarizeInput(
                    session_id=self._start.session_id,
                    user_id=self._start.user_id,
                    version=self._summary_version,
                    summary=self._summary,
                    turns=turns,
                ),
                start_to_close_timeout=policies.GENERATE_TIMEOUT,
                retry_policy=policies.LLM_RETRY,
                summary=f"fold {len(turns) // 2} older turns into the summary",
            )
        except ActivityError as err:
            # Keep them for the next attempt, bounded so the state never grows without end.
            workflow.logger.warning("summary not updated: %s", err.cause or err)
            self._to_fold = self._to_fold[-2 * self._window :]
            self._fold_failed_at = self._activity_seq
            return
        self._summary, self._summary_version = folded.summary, folded.version
        self._to_fold = self._to_fold[len(turns) :]

    def _set_status(self, status: str) -> None:
        """The session's status, with the latest turn's attributes if they wait."""
        workflow.upsert_search_attributes([sa.STATUS.value_set(status), *self._take_waiting()])

    def _record_turn(self, intent: str) -> None:
        """The turn's search attributes (turn count, last intent and activity): at once for
        a run's first turn, then at most once per TURN_ATTRIBUTES_EVERY while turns keep
        coming, the latest values waiting meanwhile. Each upsert is a history event and a
        visibility write (measured: 15-20 % of the server's CPU per turn when every turn
        had one); the values are exact again when the session goes idle, ends or
        continues as new."""
        self._waiting_attributes = [
            sa.LAST_INTENT.value_set(intent),
            sa.TURN_COUNT.value_set(self._turns_total),
            sa.LAST_ACTIVITY.value_set(workflow.now()),
        ]
        last = self._attributes_at
        if last is None or workflow.now() - last >= TURN_ATTRIBUTES_EVERY:
            self._flush_attributes()

    def _take_waiting(self) -> list[SearchAttributeUpdate[Any]]:
        waiting, self._waiting_attributes = self._waiting_attributes, []
        if waiting:
            self._attributes_at = workflow.now()
        return waiting

    def _flush_attributes(self) -> None:
        waiting = self._take_waiting()
        if waiting:
            workflow.upsert_search_attributes(waiting)

    def _details(self, state: str) -> str:
        return (
            f"**Session** `{self._start.session_id}` of `{self._start.user_id}`, "
            f"{self._turns_total} turns\n\n{state}"
        )

    def _carried_state(self, start: SessionStart) -> SessionStart:
        return SessionStart(
            session_id=start.session_id,
            user_id=start.user_id,
            idle_timeout_seconds=start.idle_timeout_seconds,
            turns_per_run=start.turns_per_run,
            recent_turns=start.recent_turns,
            templated_tool_replies=start.templated_tool_replies,
            tool_calling=start.tool_calling,
            tool_max_steps=start.tool_max_steps,
            approval_timeout_seconds=start.approval_timeout_seconds,
            handoff=self._handoff.current,
            handoff_sla_seconds=start.handoff_sla_seconds,
            handoff_after_failures=start.handoff_after_failures,
            handoff_intents=start.handoff_intents,
            loaded=True,
            summary=self._summary,
            summary_version=self._summary_version,
            to_fold=self._to_fold[-2 * self._window :],
            recent=self._recent[-self._window :],
            seen_message_ids=list(self._seen),
            turns_total=self._turns_total,
            last_turn_id=self._last_turn,
        )

    @workflow.query
    def state(self) -> SessionState:
        return SessionState(
            session_id=self._start.session_id,
            user_id=self._start.user_id,
            status="ended" if self._ended else "active",
            running_turn_id=self._running_turn,
            queued_turns=self._queued,
            turns_total=self._turns_total,
            turns_this_run=self._turns_this_run,
            summary=self._summary,
            recent=self._recent,
            pending_approvals=self._approvals.pending,
            handoff=self._handoff.current,
        )

    @workflow.update
    async def send_message(self, msg: SendMessage) -> TurnResult:
        update_id = workflow.current_update_info().id  # type: ignore[union-attr]
        turn_id = turn_id_for(self._start.session_id, update_id)
        if msg.client_message_id:
            self._seen.append(msg.client_message_id)
        stopping = None
        if msg.on_busy in ("interrupt", "rollback"):
            # Marked now, the stream told meanwhile: this message keeps its place in the
            # queue (one sent after it cannot overtake it while the stop is requested).
            stopping = self._stop_running(rollback=msg.on_busy == "rollback")
        try:
            return await self._one_at_a_time(turn_id, lambda: self._run_turn(turn_id, msg))
        finally:
            if stopping is not None and workflow.in_workflow():
                await stopping

    async def _one_at_a_time(self, turn_id: str, run: Callable[[], Awaitable[R]]) -> R:
        """Run a turn once those before it are done (FIFO), with the session loaded."""
        self._queued += 1
        try:
            async with self._turn_lock:
                # Running from here (a message that waits for the run's load included), so
                # the next message's on_busy finds it.
                self._running_turn = self._stoppable = turn_id
                await workflow.wait_condition(lambda: self._loaded)
                if self._ended:  # found ended in Postgres by the run this message started
                    raise ApplicationError("this session has ended", type="SessionEnded")
                return await run()
        finally:
            if self._running_turn == turn_id:
                self._running_turn = self._stoppable = None
            self._cancelled.discard(turn_id)
            self._dropped.discard(turn_id)
            self._queued -= 1
            self._activity_seq += 1
            # Not when the worker tears the run down (evicted mid-turn, the coroutine
            # closed outside the workflow's event loop): there is no clock to read then.
            if workflow.in_workflow():
                self._idle_since = workflow.now()

    @workflow.update
    async def regenerate(self, req: Regenerate) -> TurnResult:
        """Answer the latest turn again, with the same message and the context it had: a
        new version of its reply, which later turns see. Its tokens stream under its own
        id (this update's turn id); the result carries the turn's id and the version."""
        update_id = workflow.current_update_info().id  # type: ignore[union-attr]
        stream_id = turn_id_for(self._start.session_id, update_id)
        if req.client_message_id:
            self._seen.append(req.client_message_id)

        async def again() -> TurnResult:
            self._check_latest(req.turn_id)  # a message queued before this one moved on
            asked = self._recent[-2].content
            msg = SendMessage(text=asked, client_message_id=req.client_message_id)
            return await self._run_turn(stream_id, msg, regenerating=req.turn_id)

        return await self._one_at_a_time(stream_id, again)

    @regenerate.validator
    def _validate_regenerate(self, req: Regenerate) -> None:
        if self._ended:
            raise ApplicationError("this session has ended", type="SessionEnded")
        if self._handoff.active:
            raise ApplicationError(
                "a person has this session; the assistant answers again once they are done",
                type="WithAPerson",
            )
        if req.client_message_id and req.client_message_id in self._seen:
            raise ApplicationError(
                f"client_message_id {req.client_message_id!r} was already used in this session",
                type="DuplicateMessage",
            )
        if self._loaded:
            self._check_latest(req.turn_id)

    def _check_latest(self, turn_id: str) -> None:
        # Its message and reply end the context (a window of no turns keeps none).
        if turn_id != self._last_turn or len(self._recent) < 2:
            raise ApplicationError(
                f"turn {turn_id} is not the session's latest answered turn: only that one "
                "can be answered again (edit an earlier message to branch from it)",
                type="NotLatestTurn",
            )

    @workflow.update
    async def select_version(self, req: SelectVersion) -> ChosenVersion:
        """Another of the latest turn's replies is the one later turns see."""

        async def choose() -> ChosenVersion:
            self._check_latest(req.turn_id)
            chosen = await _store_step(
                SessionStore.select_version,
                req,
                policies.DB_TIMEOUT,
                policies.DB_RETRY,
                f"use version {req.version} of turn {req.turn_id}",
            )
            shown = findings.in_context(chosen.reply, chosen.findings)
            self._recent[-1] = ChatMessage(role="assistant", content=shown)
            return chosen

        return await self._one_at_a_time(str(workflow.uuid4()), choose)

    @select_version.validator
    def _validate_select_version(self, req: SelectVersion) -> None:
        self._validate_regenerate(Regenerate(turn_id=req.turn_id))

    def _stop_running(self, *, rollback: bool) -> asyncio.Task[None] | None:
        """A message sent with on_busy interrupt or rollback: the running turn stops where
        it is (before its reply, or mid-stream) and, rolled back, leaves no trace. A turn
        whose reply is done is being stored: it stands, and the message waits for it.
        Returns the request to its stream (None: nothing to stop)."""
        target = self._stoppable
        if target is None:
            return None
        self._cancelled.add(target)
        if rollback:
            self._dropped.add(target)
        return asyncio.ensure_future(
            _best_effort(
                StreamActivities.request_cancel,
                CancelTurn(turn_id=target),
                f"{'roll back' if rollback else 'interrupt'} turn {target}",
            )
        )

    @send_message.validator
    def _validate_send_message(self, msg: SendMessage) -> None:
        if self._ended:
            raise ApplicationError("this session has ended", type="SessionEnded")
        if msg.on_busy == "reject" and self._queued:
            raise ApplicationError(
                f"turn {self._running_turn} is still being answered; wait for it, or send "
                "with on_busy enqueue, interrupt or rollback",
                {"running_turn_id": self._running_turn, "queued_turns": self._queued},
                type="SessionBusy",
            )
        if not msg.text.strip():
            raise ApplicationError("message text is empty", type="InvalidMessage")
        if msg.client_message_id and msg.client_message_id in self._seen:
            raise ApplicationError(
                f"client_message_id {msg.client_message_id!r} was already used in this session",
                type="DuplicateMessage",
            )

    async def _run_turn(
        self, turn_id: str, msg: SendMessage, *, regenerating: str | None = None
    ) -> TurnResult:
        """A turn: `turn_id` names its stream. `regenerating`: the latest turn, answered
        again in the context it had (without its own message and reply)."""
        if self._handoff.active:
            return await self._turn_for_a_person(turn_id, msg)
        earlier = self._recent[:-2] if regenerating else self._recent
        timings: dict[str, float] = {}
        said = f"“{_clip(msg.text)}”"
        workflow.set_current_details(self._details(f"**Turn {turn_id}**: {said}, detecting intent"))
        step = workflow.time()
        intent = await workflow.execute_local_activity_method(
            IntentActivities.detect_intent,
            DetectIntentInput(
                text=msg.text,
                turn_id=turn_id,
                session_id=self._start.session_id,
                user_id=self._start.user_id,
            ),
            start_to_close_timeout=policies.LOCAL_TIMEOUT,
            retry_policy=policies.LOCAL_RETRY,
            summary=f"detect intent of {said}",
        )
        timings["detect_intent"], step = (workflow.time() - step) * 1000, workflow.time()
        found = f"intent: {intent.intent} ({intent.confidence:.2f})"
        tools = ToolOutcome()
        by_model = self._start.tool_calling  # the model chooses the tools, not the router
        # Asked for in so many words, or an intent the team keeps for people: on the
        # router's path a person takes over (with tools, the model decides, and asks).
        kept = intent.intent in self._start.handoff_intents
        to_person = not by_model and not regenerating and (intent.wants_person or kept)
        if to_person:
            request = (
                RequestHandoff(
                    source="user", reason=_clip(msg.text, 200), requested_by=self._start.user_id
                )
                if intent.wants_person
                else RequestHandoff(
                    source="rule",
                    reason=f"{intent.intent} questions go to a person: {_clip(msg.text, 200)}",
                    requested_by="rule",
                )
            )
            await self._enter_handoff(request)
        searches = not (by_model or intent.data_question or to_person)
        if intent.intent != "chat" and searches:
            workflow.set_current_details(
                self._details(f"**Turn {turn_id}**: {said}, {found}, searching")
            )
            tools = await run_tools(
                intent,
                msg.text,
                turn_id=turn_id,
                session_id=self._start.session_id,
                user_id=self._start.user_id,
            )
            timings.update(tools.timings_ms)
            timings["tools"], step = (workflow.time() - step) * 1000, workflow.time()
            for tool_result in tools.results:
                await self._publish(TurnEvent(turn_id=turn_id, kind="tool", tool=tool_result))
        retrieved = Retrieved(available=False)
        if self._turns_total > self._start.recent_turns:
            retrieved = await self._retrieve(msg.text)
            timings["retrieve_context"], step = (workflow.time() - step) * 1000, workflow.time()
        pending = self._to_fold  # on their way into the summary: still verbatim
        verbatim = {snippet(m.role, m.content) for m in pending}  # not twice in the prompt
        parts = PromptParts(
            system=TOOLS_SYSTEM_PROMPT if by_model else SYSTEM_PROMPT,
            summary=self._summary,
            retrieved=[s for s in retrieved.snippets if s not in verbatim],
            recent=[*pending, *earlier],
            tool_context=router_hint(intent) if by_model else grounding(tools),
            user=msg.text,
            retrieval_embedder=retrieved.embedder,
        )
        result = TurnResult(
            turn_id=turn_id,
            session_id=self._start.session_id,
            client_message_id=msg.client_message_id,
            user_text=msg.text,
            reply="",
            intent=intent.intent,
            intent_confidence=intent.confidence,
            tool_results=tools.results,
            citations=[c.model_dump() for c in tools.citations],
        )
        result.findings = findings.render(result.tool_results, result.citations)
        workflow.set_current_details(
            self._details(f"**Turn {turn_id}**: {said}, {found}, replying")
        )
        templated = self._start.templated_tool_replies
        fixed = None if by_model else fixed_reply(intent, tools, msg.text, templated=templated)
        if to_person:
            fixed = handoff_reply(msg.text)
            result.handoff = self._handoff.current
        turn: ToolTurn | None = None
        try:
            if turn_id in self._cancelled:  # stopped before its reply began
                reply = GeneratedReply(text="", usage=TokenUsage(), cancelled=True)
            elif fixed:
                reply = GeneratedReply(text=fixed, usage=TokenUsage())
            elif by_model:
                turn = await self._tool_turn(turn_id, parts)
                reply = await self._run_tool_turn(turn, result)
            else:
                reply = await self._generate(turn_id, parts, found)
        except ActivityError as err:
            if turn is not None:  # the calls made before the model failed are kept
                self._record_calls(turn.outcome, result)
            if turn_id in self._dropped:
                return await self._drop(result)
            cause = err.cause
            # An ApplicationError's own message: its str() puts the type in front, which
            # error_type carries apart.
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            error_type = cause.type if isinstance(cause, ApplicationError) else None
            # Regenerating, the reply in use stays and nothing is stored.
            stored = bool(regenerating) or await self._failed(result, message)
            await self._publish(
                TurnEvent(
                    turn_id=turn_id,
                    kind="error",
                    error=message,
                    error_type=error_type or "TurnFailed",
                )
            )
            if not stored:
                self._not_stored(turn_id, msg)
            details = cause.details if isinstance(cause, ApplicationError) else ()
            raise ApplicationError(message, *details, type=error_type or "TurnFailed") from err
        timings["generate_reply"] = (workflow.time() - step) * 1000
        if reply.first_token_ms is not None:
            timings["first_token"] = reply.first_token_ms
        self._stoppable = None  # its reply is done: from here it is stored as it is
        self._failed_in_a_row = 0
        result.reply, result.usage, result.context = reply.text, reply.usage, reply.context
        result.cached = reply.cached
        result.status = "cancelled" if reply.cancelled else "complete"
        result.timings_ms = timings
        result.data_timings = data_timings(result.tool_results)
        if turn_id in self._dropped:
            return await self._drop(result)
        if regenerating:
            return await self._new_version(result, regenerating, turn_id)
        escalated = _escalation(result)
        if escalated is not None:  # the model handed over, and the user approved it
            await self._enter_handoff(
                RequestHandoff(source="model", reason=escalated, requested_by="assistant")
            )
            result.handoff = self._handoff.current
        persisted, final_seq = await self._store_turn(result, msg)
        timings["persist_turn"] = persisted.ms
        self._recent += [
            ChatMessage(role="user", content=msg.text),
            ChatMessage(role="assistant", content=findings.in_context(reply.text, result.findings)),
        ]
        if len(self._recent) > self._window:
            overflow = len(self._recent) - self._window
            self._to_fold += self._recent[:overflow]
            self._recent = self._recent[overflow:]
        self._turns_total += 1
        self._turns_this_run += 1
        self._last_turn = turn_id
        self._record_turn(intent.intent)
        workflow.set_current_details(
            self._details(
                f"**Last turn** {turn_id}: {said} → {result.status}, "
                f"{reply.usage.completion_tokens} tokens"
            )
        )
        await self._publish_final(persisted, result, final_seq)
        return result

    async def _store_turn(
        self, result: TurnResult, msg: SendMessage, *, user_only: bool = False
    ) -> tuple[PersistOutcome, int]:
        """Store the turn, its final event published by the same step (its number taken
        now, returned with the outcome); readers that get the event find the turn in
        Postgres. Not stored: its readers are told, and the turn fails leaving no trace."""
        final_seq = self._next_seq()
        persisted = await self._persist(result, final_seq=final_seq, user_only=user_only)
        if persisted is None:
            error = "the reply could not be stored; nothing of this turn was kept"
            await self._publish(
                TurnEvent(
                    turn_id=result.turn_id, kind="error", error=error, error_type="TurnNotStored"
                )
            )
            self._not_stored(result.turn_id, msg)
        return persisted, final_seq

    async def _failed(self, result: TurnResult, message: str) -> bool:
        """A turn whose reply failed, stored as failed (False: it could not be), and a
        person brought in when HANDOFF_AFTER_FAILURES turns in a row failed."""
        result.status, result.error = "failed", message
        workflow.set_current_details(self._details(f"**Turn {result.turn_id}** failed: {message}"))
        self._failed_in_a_row += 1
        limit = self._start.handoff_after_failures
        if limit and self._failed_in_a_row >= limit:  # a rule: a person takes over
            reason = f"{self._failed_in_a_row} turns in a row failed; the last: {message}"
            await self._enter_handoff(
                RequestHandoff(source="rule", reason=reason[:500], requested_by="rule")
            )
        return await self._persist(result) is not None

    async def _new_version(self, result: TurnResult, turn_id: str, stream_id: str) -> TurnResult:
        """A regenerated reply: stored as the turn's next version (its final event on its
        own stream), and the one later turns see."""
        result.turn_id = turn_id
        final_seq = self._next_seq()
        req = PersistVersion(
            result=result, stream_id=stream_id, user_id=self._start.user_id, final_seq=final_seq
        )
        try:
            stored = await _store_step(
                SessionStore.persist_version,
                req,
                policies.DB_TIMEOUT,
                policies.DB_RETRY,
                f"version of turn {turn_id}: {result.status}",
            )
        except STEP_FAILED as err:
            workflow.logger.warning("version not stored: %s", err.cause or err)
            error = "the new answer could not be stored; the earlier one stays in use"
            await self._publish(
                TurnEvent(turn_id=stream_id, kind="error", error=error, error_type="TurnNotStored")
            )
            raise ApplicationError(error, type="TurnNotStored") from err
        result.version, result.versions = stored.version, stored.versions
        result.timings_ms["persist_turn"] = stored.ms
        shown = findings.in_context(result.reply, result.findings)
        self._recent[-1] = ChatMessage(role="assistant", content=shown)
        self._turns_this_run += 1
        await self._publish_final(stored, result, final_seq, stream_id=stream_id)
        return result

    async def _drop(self, result: TurnResult) -> TurnResult:
        """A rolled-back turn: no message of it is stored or kept in the context (its
        client_message_id stays used: a retry of it is not run again); what it cost is
        charged, and its readers get its final event."""
        result.status, result.rolled_back = "cancelled", True
        final_seq = self._next_seq()
        persisted = await self._persist(result, final_seq=final_seq, dropped=True)
        await self._publish_final(persisted or PersistOutcome(ms=0), result, final_seq)
        workflow.set_current_details(self._details(f"**Turn {result.turn_id}** rolled back"))
        return result

    async def _publish_final(
        self,
        persisted: PersistOutcome,
        result: TurnResult,
        final_seq: int,
        *,
        stream_id: str | None = None,
    ) -> None:
        """The final event the storing step could not publish (Redis was away then), with
        the publish step's own retries; on `stream_id` for a regenerated version."""
        if not persisted.published:
            final = TurnEvent(turn_id=stream_id or result.turn_id, kind="final", result=result)
            await self._publish(final, seq=final_seq)

    async def _turn_for_a_person(self, turn_id: str, msg: SendMessage) -> TurnResult:
        """A user's message while a person has the session: stored for the agent, no
        model asked; the result carries the handoff (who has it, or that it waits)."""
        result = TurnResult(
            turn_id=turn_id,
            session_id=self._start.session_id,
            client_message_id=msg.client_message_id,
            user_text=msg.text,
            reply="",
            handoff=self._handoff.current,
        )
        persisted, final_seq = await self._store_turn(result, msg, user_only=True)
        self._recent.append(ChatMessage(role="user", content=msg.text))
        self._last_turn = None
        self._turns_total += 1
        self._turns_this_run += 1
        await self._publish_final(persisted, result, final_seq)
        return result

    async def _enter_handoff(self, req: RequestHandoff) -> Handoff:
        if self._handoff.request(req, workflow.now()):
            self._rearm = True
            await self._save_handoff(f"requested by the {req.source}")
        assert self._handoff.current is not None
        return self._handoff.current

    @workflow.update
    async def request_handoff(self, req: RequestHandoff) -> Handoff:
        """The user (or a rule) asks for a person: the session joins the agents' queue
        and the bot stops answering. Asked again, the same handoff."""
        # A run started by this update loads the session first; its load must not undo this.
        await workflow.wait_condition(lambda: self._loaded)
        return await self._enter_handoff(req)

    @request_handoff.validator
    def _validate_request_handoff(self, req: RequestHandoff) -> None:
        if self._ended:
            raise ApplicationError("this session has ended", type="SessionEnded")

    @workflow.update
    async def claim_handoff(self, req: ClaimHandoff) -> Handoff:
        if self._handoff.claim(req.agent_id, workflow.now()):
            await self._save_handoff(f"claimed by {req.agent_id}")
        assert self._handoff.current is not None
        return self._handoff.current

    @claim_handoff.validator
    def _validate_claim_handoff(self, req: ClaimHandoff) -> None:
        self._handoff.check_claim(req.agent_id)

    @workflow.update
    async def agent_reply(self, req: AgentReply) -> TurnResult:
        """The claiming agent's message to the user: stored with role agent and published
        as a turn of its own (its text in the final event)."""
        self._handoff.check_agent(req.agent_id)  # again: the claim may have moved on
        if req.client_message_id:  # a retried POST is refused, not written twice
            self._seen.append(req.client_message_id)
        turn_id = str(workflow.uuid4())
        final_seq = self._next_seq()
        turn = AgentTurn(
            turn_id=turn_id,
            session_id=self._start.session_id,
            user_id=self._start.user_id,
            agent_id=req.agent_id,
            text=req.text,
            client_message_id=req.client_message_id,
            final_seq=final_seq,
        )
        outcome = await _store_step(
            SessionStore.persist_agent_turn,
            turn,
            policies.DB_TIMEOUT,
            policies.DB_RETRY,
            f"the message of agent {req.agent_id}",
        )
        result = TurnResult(
            turn_id=turn_id,
            session_id=self._start.session_id,
            client_message_id=req.client_message_id,
            reply=req.text,
            agent_id=req.agent_id,
            handoff=self._handoff.current,
        )
        await self._publish_final(outcome, result, final_seq)
        self._recent.append(
            ChatMessage(role="assistant", content=f"(A person from the team wrote:) {req.text}")
        )
        self._last_turn = None
        await self._to_feed(
            "agent_message", {"turn_id": turn_id, "text": req.text, "agent_id": req.agent_id}
        )
        return result

    @agent_reply.validator
    def _validate_agent_reply(self, req: AgentReply) -> None:
        self._handoff.check_agent(req.agent_id)
        if req.client_message_id and req.client_message_id in self._seen:
            raise ApplicationError(
                f"client_message_id {req.client_message_id!r} was already used in this session",
                type="DuplicateMessage",
            )

    @workflow.update
    async def release_handoff(self, req: ReleaseHandoff) -> None:
        """The agent is done: the bot answers again (`bot`), or the session ends (`closed`)."""
        self._handoff.release(req.agent_id)
        await self._save_handoff(f"{req.agent_id}: {req.outcome}")
        if req.outcome == "closed":
            self._ended = True

    @release_handoff.validator
    def _validate_release_handoff(self, req: ReleaseHandoff) -> None:
        self._handoff.check_agent(req.agent_id)

    async def _tool_turn(self, turn_id: str, parts: PromptParts) -> ToolTurn:
        catalog = await workflow.execute_local_activity_method(
            ToolActivities.tool_catalog,
            start_to_close_timeout=policies.LOCAL_TIMEOUT,
            retry_policy=policies.LOCAL_RETRY,
            summary="the tools this turn may call",
        )
        return ToolTurn(
            turn_id=turn_id,
            session_id=self._start.session_id,
            user_id=self._start.user_id,
            parts=parts,
            catalog=catalog,
            max_steps=self._start.tool_max_steps,
            approval_timeout=timedelta(seconds=self._start.approval_timeout_seconds),
            approvals=self._approvals,
            publish=self._publish,
            cancelled=lambda: turn_id in self._cancelled,
        )

    async def _run_tool_turn(self, turn: ToolTurn, result: TurnResult) -> GeneratedReply:
        outcome = await turn.run()
        self._record_calls(outcome, result)
        return GeneratedReply(
            text=outcome.text,
            usage=outcome.usage,
            cancelled=outcome.cancelled,
            first_token_ms=outcome.first_token_ms,
            context=outcome.context,
            cached=outcome.cached,
        )

    def _record_calls(self, outcome: ToolTurnOutcome, result: TurnResult) -> None:
        result.tool_calls = [c.model_dump(mode="json") for c in outcome.calls]
        result.tool_results = outcome.tool_results
        result.citations = [
            c for r in result.tool_results if r.get("tool") == "web_search" for c in r["citations"]
        ]
        result.findings = findings.render(result.tool_results, result.citations)

    async def _generate(self, turn_id: str, parts: PromptParts, found: str) -> GeneratedReply:
        return await workflow.execute_activity_method(
            LlmActivities.generate_reply,
            GenerateReplyInput(
                turn_id=turn_id,
                parts=parts,
                session_id=self._start.session_id,
                user_id=self._start.user_id,
            ),
            start_to_close_timeout=policies.GENERATE_TIMEOUT,
            schedule_to_close_timeout=policies.GENERATE_DEADLINE,
            heartbeat_timeout=policies.GENERATE_HEARTBEAT,
            retry_policy=policies.LLM_RETRY,
            summary=f"reply: {found}, {len(self._recent) // 2} turns in context",
        )

    async def _retrieve(self, query: str) -> Retrieved:
        """Earlier messages like this one; without them the turn still runs."""
        req = RetrieveInput(
            session_id=self._start.session_id, query=query, exclude_recent=self._window
        )
        try:
            return await _store_step(
                MemoryActivities.retrieve_context,
                req,
                policies.TOOL_TIMEOUT,
                policies.TOOL_RETRY,
                "retrieve relevant earlier messages",
            )
        except STEP_FAILED as err:
            workflow.logger.warning("no retrieval this turn: %s", err.cause or err)
            return Retrieved(available=False)

    async def _persist(
        self,
        result: TurnResult,
        *,
        final_seq: int | None = None,
        user_only: bool = False,
        dropped: bool = False,
    ) -> PersistOutcome | None:
        """Store the turn, and with `final_seq` publish its final event once stored; None
        when it could not be stored within DB_DEADLINE, or its data can never be (the
        session was deleted meanwhile, a value Postgres refuses)."""
        req = PersistTurn(
            result=result,
            user_id=self._start.user_id,
            final_seq=final_seq,
            user_only=user_only,
            dropped=dropped,
        )
        then = ", then its final event" if final_seq is not None else ""
        try:
            return await _store_step(
                SessionStore.persist_turn,
                req,
                policies.DB_TIMEOUT,
                policies.DB_RETRY,
                f"persist turn: {result.status}, {result.usage.completion_tokens} tokens{then}",
            )
        except STEP_FAILED as err:
            workflow.logger.warning("turn not stored: %s", err.cause or err)
            return None

    def _not_stored(self, turn_id: str, msg: SendMessage) -> NoReturn:
        """The turn ends failed and leaves no trace: its client_message_id may be sent
        again (in a later run of the session), and the next message is answered."""
        if msg.client_message_id and msg.client_message_id in self._seen:
            self._seen.remove(msg.client_message_id)
        workflow.set_current_details(self._details(f"**Turn {turn_id}** could not be stored"))
        raise ApplicationError(
            "the turn could not be stored, so nothing of it was kept; send the message "
            "again, with a new client_message_id",
            type="TurnNotStored",
        )

    def _next_seq(self) -> int:
        """The number of the next event this run publishes (TurnEvent.seq)."""
        self._published += 1
        return self._published

    async def _publish(self, event: TurnEvent, *, seq: int | None = None) -> None:
        """Best effort: readers that miss an event find the stored turn in Postgres. `seq`:
        the number taken for it before (an event a step meant to publish)."""
        event.session_id, event.user_id = self._start.session_id, self._start.user_id
        event.seq = seq if seq is not None else self._next_seq()
        await _best_effort(StreamActivities.publish_turn_event, event, f"stream: {event.kind}")

    @workflow.update
    async def cancel_turn(self, req: CancelTurn) -> None:
        self._cancelled.add(req.turn_id)  # ends its approval waits, stops its tool rounds
        await workflow.execute_local_activity_method(
            StreamActivities.request_cancel,
            req,
            start_to_close_timeout=policies.LOCAL_TIMEOUT,
            retry_policy=policies.LOCAL_RETRY,
            summary=f"cancel turn {req.turn_id}",
        )

    @cancel_turn.validator
    def _validate_cancel_turn(self, req: CancelTurn) -> None:
        if req.turn_id != self._running_turn:
            raise ApplicationError(
                f"turn {req.turn_id} is not running in this session", type="TurnNotRunning"
            )

    @workflow.update
    def decide_approval(self, req: ApprovalDecision) -> ApprovalOutcome:
        """A person's decision on a tool call waiting for approval (POST
        /v1/sessions/{sid}/turns/{tid}/approvals/{call_id}); the same decision twice is
        answered as recorded."""
        return self._approvals.decide(req)

    @decide_approval.validator
    def _validate_decide_approval(self, req: ApprovalDecision) -> None:
        self._approvals.check(req, self._running_turn)

    @workflow.signal
    def end_session(self) -> None:
        """End gracefully: running and queued turns finish, new messages are refused."""
        self._ended = True
