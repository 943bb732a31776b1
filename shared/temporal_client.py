"""One place that turns settings into a connected Temporal client: a local or self-hosted
server (optionally TLS), or Temporal Cloud with an API key over TLS. Misconfiguration
becomes a `TemporalConnectError` that says which setting to check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared import search_attributes
from shared.config import Settings
from shared.payloads import data_converter
from shared.tracing import tracing_active


class TemporalConnectError(RuntimeError):
    """Temporal cannot be reached or refuses us; the message says what to check."""


@dataclass(frozen=True)
class TemporalTarget:
    address: str
    namespace: str
    api_key: str | None
    tls: bool
    ca_path: Path | None

    def describe(self) -> str:
        tls = "TLS on" if self.tls else "TLS off"
        auth = ", API key" if self.api_key else ""
        return f"{self.address} (namespace {self.namespace!r}, {tls}{auth})"


def temporal_target(settings: Settings) -> TemporalTarget:
    if settings.temporal_cloud_api_key is not None:
        # The settings validator guarantees namespace and address are set with a key.
        return TemporalTarget(
            address=settings.temporal_cloud_address or "",
            namespace=settings.temporal_cloud_namespace or "",
            api_key=settings.temporal_cloud_api_key.get_secret_value(),
            tls=True,
            ca_path=settings.temporal_tls_ca_path,
        )
    return TemporalTarget(
        address=settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=None,
        tls=settings.temporal_tls,
        ca_path=settings.temporal_tls_ca_path,
    )


def _tls(target: TemporalTarget) -> TLSConfig | bool:
    if not target.tls:
        return False
    if target.ca_path is not None:
        return TLSConfig(server_root_ca_cert=target.ca_path.read_bytes())
    return True


async def _connect_once(target: TemporalTarget, runtime: Runtime | None, *, traced: bool) -> Client:
    try:
        client = await Client.connect(
            target.address,
            namespace=target.namespace,
            api_key=target.api_key,
            tls=_tls(target),
            data_converter=data_converter,
            # Only where spans go somewhere: without, the interceptor would still wrap
            # every activation and activity in no-op spans and carry their context.
            interceptors=[TracingInterceptor()] if traced else [],
            runtime=runtime,
        )
    except RuntimeError as err:  # the SDK reports transport and TLS failures this way
        raise TemporalConnectError(
            f"cannot connect to Temporal at {target.describe()}: {err}. Check "
            "TEMPORAL_ADDRESS (or TEMPORAL_CLOUD_ADDRESS), TEMPORAL_TLS and TEMPORAL_TLS_CA_PATH"
        ) from None
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=target.namespace)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise TemporalConnectError(
                f"namespace {target.namespace!r} does not exist at {target.address}; check "
                "TEMPORAL_NAMESPACE (or TEMPORAL_CLOUD_NAMESPACE)"
            ) from None
        if err.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
            raise TemporalConnectError(
                f"Temporal at {target.address} refused our credentials for namespace "
                f"{target.namespace!r} ({err.message}); check TEMPORAL_CLOUD_API_KEY"
            ) from None
        raise TemporalConnectError(f"Temporal at {target.describe()} failed: {err}") from None
    return client


async def connect_temporal(
    settings: Settings, *, runtime: Runtime | None = None, retry: bool = False
) -> Client:
    """Connect and check the namespace. With `retry`, keep trying with backoff for
    STARTUP_RETRY_SECONDS (a worker started before Temporal is up waits for it)."""
    target = temporal_target(settings)
    traced = tracing_active()
    if not retry:
        return await _connect_once(target, runtime, traced=traced)
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(settings.startup_retry_seconds),
        wait=wait_exponential(multiplier=0.2, max=5),
        retry=retry_if_exception_type(TemporalConnectError),
        reraise=True,
    ):
        with attempt:
            return await _connect_once(target, runtime, traced=traced)
    raise AssertionError("unreachable: tenacity reraises the last error")


class SearchAttributesMissing(RuntimeError):
    """The namespace lacks the session search attributes and they cannot be added here."""


async def ensure_search_attributes(client: Client) -> None:
    """Register the session search attributes where missing (dev server, self-hosted).
    Where the namespace does not allow it (Temporal Cloud), say what to run instead."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in search_attributes.ALL
        if key.name not in listed.custom_attributes
    }
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except RPCError as err:
        flags = " ".join(
            f"--search-attribute {key.name}={search_attributes.type_name(key)}"
            for key in search_attributes.ALL
            if key.name in missing
        )
        raise SearchAttributesMissing(
            f"namespace {client.namespace!r} lacks search attributes {sorted(missing)} and "
            f"they could not be added ({err.status.name}: {err.message}); create them once, "
            f"e.g. `tcld namespace search-attributes add --namespace {client.namespace} "
            f"{flags}` on Temporal Cloud or `temporal operator search-attribute create` "
            "on a self-hosted cluster"
        ) from err
