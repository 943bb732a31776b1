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
    DescribeWorkerDeploymentResponse,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig, WorkerDeploymentVersion
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from shared.build import build_id
from shared.config import Settings

# How long `promote` keeps trying: the server accepts a version as current only once its
# workers' pollers have reached it (a second or two after they start).
PROMOTE_DEADLINE_SECONDS = 30.0
# How long a describe rides out the server's per-deployment rate limit ("too many
# requests issued to Worker Deployment", RESOURCE_EXHAUSTED).
DESCRIBE_DEADLINE_SECONDS = 6.0
# Worth trying again while promoting: not yet (no pollers seen), raced (the conflict token
# moved), the rate limit, or the server briefly away.
_PROMOTE_RETRYABLE = frozenset(
    {
        RPCStatusCode.NOT_FOUND,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.ABORTED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    }
)


def _status_in(codes: frozenset[RPCStatusCode]) -> retry_if_exception:
    return retry_if_exception(lambda err: isinstance(err, RPCError) and err.status in codes)


async def _deployment(client: Client, name: str) -> DescribeWorkerDeploymentResponse | None:
    """The deployment as the server describes it; None before any worker of it polled."""
    request = DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=name)

    async def once() -> DescribeWorkerDeploymentResponse | None:
        try:
            return await client.workflow_service.describe_worker_deployment(request)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    retrying = AsyncRetrying(
        stop=stop_after_delay(DESCRIBE_DEADLINE_SECONDS),
        wait=wait_exponential(multiplier=0.2, max=3.2),
        retry=_status_in(frozenset({RPCStatusCode.RESOURCE_EXHAUSTED})),
        reraise=True,
    )
    return await retrying(once)


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
    name = settings.worker_deployment_name

    async def once() -> str:
        described = await _deployment(client, name)
        routing = described.worker_deployment_info.routing_config if described else None
        current = routing.current_deployment_version.build_id if routing else ""
        if current == build or (current and only_if_none):
            return current
        await client.workflow_service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(
                namespace=client.namespace,
                deployment_name=name,
                build_id=build,
                conflict_token=described.conflict_token if described else b"",
                identity=f"chatbot@{socket.gethostname()}",
                # Called by the build's own worker once it runs: its pollers are on their
                # way, and waiting for the server to see them costs seconds.
                allow_no_pollers=True,
            )
        )
        return build

    retrying = AsyncRetrying(
        stop=stop_after_delay(deadline_seconds),
        wait=wait_exponential(multiplier=0.1, max=2.0),
        retry=_status_in(_PROMOTE_RETRYABLE),
        reraise=True,
    )
    try:
        return await retrying(once)
    except RPCError as err:
        raise PromoteError(
            f"could not make build {build} current in deployment {name}: "
            f"{err.status.name}: {err.message}"
        ) from None


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
    name = settings.worker_deployment_name
    described = await _deployment(client, name)
    if described is None:
        return 0
    current, ended = build_id(settings), 0
    for version in described.worker_deployment_info.version_summaries:
        build = version.deployment_version.build_id
        if build == current:
            continue
        query = (
            f"ExecutionStatus = 'Running' AND TemporalWorkerDeploymentVersion = \"{name}:{build}\""
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
    described = await _deployment(client, name)
    if described is None:
        return None
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
