"""The raw floor: what Temporal alone costs on this machine, measured on the same server
the service uses. A no-op workflow with a no-op update runs on its own task queue in the
bench process; the floor is update-with-start on an existing workflow (latency, one at a
time) and how many such updates a second go through at a few concurrencies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker
from temporalio.workflow import UpdateMethodMultiParam

from loadtest.bench.floor_workflow import NoopWorkflow, noop_step
from loadtest.bench.stats import summary

Update = UpdateMethodMultiParam[[NoopWorkflow], None]


class Floor:
    def __init__(self, client: Client, task_queue: str, workflow_ids: Sequence[str]) -> None:
        self._client = client
        self._task_queue = task_queue
        self.workflow_ids = list(workflow_ids)
        self.count = 0  # updates sent, for the CPU each one costs

    async def update(self, workflow_id: str, update: Update = NoopWorkflow.noop) -> float:
        """One update-with-start (the no-op one by default); returns its latency in ms."""
        start = WithStartWorkflowOperation(
            NoopWorkflow.run,
            id=workflow_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        began = time.perf_counter()
        await self._client.execute_update_with_start_workflow(
            update, start_workflow_operation=start
        )
        self.count += 1
        return (time.perf_counter() - began) * 1000

    async def sequential(self, count: int, update: Update = NoopWorkflow.noop) -> list[float]:
        ids = self.workflow_ids
        return [await self.update(ids[i % len(ids)], update) for i in range(count)]

    async def throughput(self, concurrency: int, seconds: float) -> dict[str, float]:
        """`concurrency` loops, each on its own workflow, for `seconds`: updates a second."""
        deadline = time.perf_counter() + seconds
        latencies: list[float] = []

        async def loop(workflow_id: str) -> None:
            while time.perf_counter() < deadline:
                latencies.append(await self.update(workflow_id))

        began = time.perf_counter()
        await asyncio.gather(*(loop(wid) for wid in self.workflow_ids[:concurrency]))
        elapsed = time.perf_counter() - began
        stats = summary(latencies)
        return {
            "concurrency": concurrency,
            "updates": len(latencies),
            "seconds": elapsed,
            "updates_per_s": len(latencies) / elapsed,
            "p50_ms": stats["p50"] or 0.0,
            "p99_ms": stats["p99"] or 0.0,
        }

    async def finish(self) -> None:
        for workflow_id in self.workflow_ids:
            await self._client.get_workflow_handle(workflow_id).signal(NoopWorkflow.finish)


async def measure_floor(
    address: str,
    namespace: str,
    *,
    samples: int,
    seconds: float,
    concurrency: Sequence[int],
) -> dict[str, Any]:
    client = await Client.connect(address, namespace=namespace)
    run = uuid.uuid4().hex[:8]
    task_queue = f"bench-floor-{run}"
    ids = [f"bench-floor-{run}-{i}" for i in range(max(concurrency, default=1))]
    floor = Floor(client, task_queue, ids)
    worker = Worker(client, task_queue=task_queue, workflows=[NoopWorkflow], activities=[noop_step])
    async with worker:
        try:
            started = [await floor.update(wid) for wid in ids]  # each starts its workflow
            await floor.sequential(min(10, samples))  # warm-up: connections, caches
            latencies = await floor.sequential(samples)
            # What one step costs inside an update, as a normal and as a local activity.
            steps = max(samples // 2, 1)
            activity = await floor.sequential(steps, NoopWorkflow.with_activity)
            local = await floor.sequential(steps, NoopWorkflow.with_local_activity)
            levels = [await floor.throughput(c, seconds) for c in concurrency]
        finally:
            await floor.finish()
    update = summary(latencies)
    return {
        "task_queue": task_queue,
        "updates_total": floor.count,
        "new_workflow_ms": summary(started),
        "update_ms": update,
        "update_with_activity_ms": summary(activity),
        "update_with_local_activity_ms": summary(local),
        "throughput": levels,
        "max_updates_per_s": max((lv["updates_per_s"] for lv in levels), default=0.0),
    }
