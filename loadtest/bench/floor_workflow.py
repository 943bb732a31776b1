"""The raw floor's workflow: a no-op update on a workflow that only waits, so timing it
measures Temporal itself (client -> server -> worker -> server -> client) and nothing else.
Two more updates run one no-op activity, normal or local, to price a step of either kind."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import activity, workflow

# A bench that dies without signalling leaves no workflow running for long.
LIFETIME = timedelta(hours=1)
STEP_TIMEOUT = timedelta(seconds=30)


@activity.defn
async def noop_step() -> None:
    """Does nothing, as an activity."""


@workflow.defn
class NoopWorkflow:
    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._done, timeout=LIFETIME)

    @workflow.update
    def noop(self) -> None:
        """Does nothing: its round trip is the floor."""

    @workflow.update
    async def with_activity(self) -> None:
        await workflow.execute_activity(noop_step, start_to_close_timeout=STEP_TIMEOUT)

    @workflow.update
    async def with_local_activity(self) -> None:
        await workflow.execute_local_activity(noop_step, start_to_close_timeout=STEP_TIMEOUT)

    @workflow.signal
    def finish(self) -> None:
        self._done = True
