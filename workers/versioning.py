"""Worker Versioning: workers run as a version of a Worker Deployment, and session
workflows are Pinned to the version that started their run (docs.temporal.io,
"Worker Versioning"). New runs, continue-as-new included (it asks for AUTO_UPGRADE),
start on the deployment's current version; `promote` sets it, `describe` shows each
version and how many session runs it still holds (its drainage).

The deployment APIs are the workflow service's (`SetWorkerDeploymentCurrentVersion`,
`DescribeWorkerDeployment`), as the `temporal worker deployment` commands use them."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from datetime import datetime

from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig, WorkerDeploymentVersion

from shared.build import build_id
from shared.config import Settings

# How long `promote` keeps trying: the server accepts a version as current only once its
# workers' pollers have reached it (a second or two after they start).
PROMOTE_DEADLINE_SECONDS = 30.0
DESCRIBE_BACKOFF_MAX = 5.0  # seconds: 0.2 + 0.4 + ... + 3.2, about 6 s in all


def deployment_config(settings: Settings) -> WorkerDeploymentConfig:
    """The worker's version; workflows without their own behaviour are Pinned too."""
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.worker_deployment_name, build_id(settings)),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


class PromoteError(RuntimeError):
    """The version could not be made current; the message says why."""


async def promote(
    client: Client,
    settings: Settings,
    *,
    build: str | None = None,
    only_if_none: bool = False,
    deadline_seconds: float = PROMOTE_DEADLINE_SECONDS,
) -> str:
    """Make `build` (default: this code's) the deployment's current version; returns the
    current build. `only_if_none`: only when the deployment has no current version yet
    (its first build starts serving by itself; later ones wait for a promotion).
    Retried until the deadline while the server does not know the version's pollers yet,
    or another change of the deployment raced this one (its conflict token moved)."""
    build = build or build_id(settings)
    name, service = settings.worker_deployment_name, client.workflow_service
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_seconds
    delay, last = 0.1, ""
    while True:
        try:
            token = b""
            try:
                described = await service.describe_worker_deployment(
                    DescribeWorkerDeploymentRequest(
                        namespace=client.namespace, deployment_name=name
                    )
                )
                token = described.conflict_token
                routing = described.worker_deployment_info.routing_config
                current = routing.current_deployment_version.build_id
                if current == build or (current and only_if_none):
                    return current
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:  # not found: no version polled yet
                    raise
            await service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=name,
                    build_id=build,
                    conflict_token=token,
                    identity=f"chatbot@{socket.gethostname()}",
                    # Called by the build's own worker once it runs: its pollers are on
                    # their way, and waiting for the server to see them costs seconds.
                    allow_no_pollers=True,
                )
            )
            return build
        except RPCError as err:
            # Not yet (no pollers seen), raced (the conflict token moved), or the server's
            # per-deployment rate limit ("too many requests issued to Worker Deployment").
            retryable = err.status in (
                RPCStatusCode.NOT_FOUND,
                RPCStatusCode.FAILED_PRECONDITION,
                RPCStatusCode.ABORTED,
                RPCStatusCode.UNAVAILABLE,
                RPCStatusCode.RESOURCE_EXHAUSTED,
            )
            last = f"{err.status.name}: {err.message}"
            if not retryable or loop.time() + delay > give_up:
                raise PromoteError(
                    f"could not make build {build} current in deployment {name}: {last}"
                ) from None
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)  # the rate limit is per deployment: back off


@dataclass(frozen=True)
class VersionView:
    build_id: str
    status: str  # current, ramping, draining, drained, inactive
    drainage: str  # "", draining, drained
    running_sessions: int
    created: datetime | None


@dataclass(frozen=True)
class DeploymentView:
    name: str
    current_build: str | None
    ramping_build: str | None
    ramping_percent: float
    versions: list[VersionView]


_STATUS = {
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT: "current",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_RAMPING: "ramping",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINING: "draining",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_DRAINED: "drained",
    WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE: "inactive",
}
_DRAINAGE = {
    VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINING: "draining",
    VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED: "drained",
}


async def retire_other_builds(client: Client, settings: Settings, *, reason: str) -> int:
    """End the session runs still pinned to another build of the deployment, for a host
    where that build's workers are gone for good (`chatbot dev` restarted on changed
    code): nothing would ever run them again. Their turns are in Postgres; the session's
    next message starts a new run on the current build, which reloads them."""
    view = await describe(client, settings)
    if view is None:
        return 0
    current, ended = build_id(settings), 0
    for version in view.versions:
        if version.build_id == current:
            continue
        query = (
            "ExecutionStatus = 'Running' AND TemporalWorkerDeploymentVersion = "
            f'"{view.name}:{version.build_id}"'
        )
        async for run in client.list_workflows(query):
            try:
                await client.get_workflow_handle(run.id, run_id=run.run_id).terminate(reason=reason)
                ended += 1
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:  # closed meanwhile
                    raise
    return ended


async def running_on(client: Client, deployment: str, build: str) -> int:
    """Session runs still open on a version (visibility; a few seconds behind)."""
    query = (
        f'TemporalWorkerDeploymentVersion = "{deployment}:{build}" AND ExecutionStatus = "Running"'
    )
    return (await client.count_workflows(query)).count


async def describe(client: Client, settings: Settings) -> DeploymentView | None:
    """The deployment's versions, newest first, with their sessions; None before any
    worker of it has polled."""
    name = settings.worker_deployment_name
    request = DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=name)
    delay = 0.2
    while True:
        try:
            described = await client.workflow_service.describe_worker_deployment(request)
            break
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            # The server limits requests per deployment; a bounded backoff rides it out.
            if err.status != RPCStatusCode.RESOURCE_EXHAUSTED or delay > DESCRIBE_BACKOFF_MAX:
                raise
        await asyncio.sleep(delay)
        delay *= 2
    info = described.worker_deployment_info
    routing = info.routing_config
    summaries = sorted(
        info.version_summaries, key=lambda v: v.create_time.ToDatetime(), reverse=True
    )
    counts = await asyncio.gather(
        *(running_on(client, name, v.deployment_version.build_id) for v in summaries)
    )
    versions = [
        VersionView(
            build_id=v.deployment_version.build_id,
            status=_STATUS.get(v.status, "inactive"),
            drainage=_DRAINAGE.get(v.drainage_status, ""),
            running_sessions=count,
            created=v.create_time.ToDatetime() if v.HasField("create_time") else None,
        )
        for v, count in zip(summaries, counts, strict=True)
    ]
    return DeploymentView(
        name=name,
        current_build=routing.current_deployment_version.build_id or None,
        ramping_build=routing.ramping_deployment_version.build_id or None,
        ramping_percent=routing.ramping_version_percentage,
        versions=versions,
    )
