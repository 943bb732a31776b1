"""One place that turns settings into a connected Temporal client: a local or self-hosted
server, or Temporal Cloud with an API key over TLS."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

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
