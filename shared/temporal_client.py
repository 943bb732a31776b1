"""One place that turns settings into a connected Temporal client: a local or self-hosted
server, or Temporal Cloud with an API key over TLS."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from shared import search_attributes
from shared.config import Settings


@dataclass(frozen=True)
class TemporalTarget:
    address: str
    namespace: str
    api_key: str | None
    tls: bool


def temporal_target(settings: Settings) -> TemporalTarget:
    if settings.temporal_cloud_api_key is not None:
        # The settings validator guarantees namespace and address are set with a key.
        return TemporalTarget(
            address=settings.temporal_cloud_address or "",
            namespace=settings.temporal_cloud_namespace or "",
            api_key=settings.temporal_cloud_api_key.get_secret_value(),
            tls=True,
        )
    return TemporalTarget(
        address=settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=None,
        tls=False,
    )


async def connect_temporal(settings: Settings) -> Client:
    target = temporal_target(settings)
    return await Client.connect(
        target.address,
        namespace=target.namespace,
        api_key=target.api_key,
        tls=target.tls,
        data_converter=pydantic_data_converter,
    )


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
