"""The gateway's long-lived clients, built once in the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from chatbot.errors import Unavailable
from chatbot.oidc import OidcVerifier
from chatbot.stream_slots import StreamSlots
from shared.config import Settings
from shared.db.engine import engine_from_settings
from shared.redis import redis_from_settings, stream_redis_from_settings
from shared.temporal_client import TemporalConnectError, connect_temporal
from shared.usage import UsageLedger, ledger_from_settings


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    redis: Redis  # commands
    stream_redis: Redis  # blocking reads of token streams, on a pool of their own
    slots: StreamSlots
    ledger: UsageLedger  # usage and budgets
    oidc: OidcVerifier | None = None  # OIDC_ISSUER's tokens
    _temporal: Client | None = None
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> Resources:
        engine = engine_from_settings(settings)
        return cls(
            settings=settings,
            engine=engine,
            ledger=ledger_from_settings(engine, settings),
            redis=redis_from_settings(settings),
            stream_redis=stream_redis_from_settings(settings),
            slots=StreamSlots(settings.max_streams_per_user),
            oidc=oidc_from_settings(settings),
        )

    async def temporal(self) -> Client:
        """Connect on first use, so the gateway starts (and reports) while Temporal is down."""
        if self._temporal is None:
            async with self._temporal_lock:
                if self._temporal is None:
                    try:
                        self._temporal = await connect_temporal(self.settings)
                    except TemporalConnectError as err:
                        raise Unavailable(str(err), retry_after=5) from None
        return self._temporal

    async def close(self) -> None:
        if self.oidc is not None:
            await self.oidc.close()
        await self.redis.aclose()
        await self.stream_redis.aclose()
        await self.engine.dispose()


def oidc_from_settings(settings: Settings) -> OidcVerifier | None:
    if settings.oidc_issuer is None:
        return None
    assert settings.oidc_audience is not None  # checked with the settings
    return OidcVerifier(
        settings.oidc_issuer,
        settings.oidc_audience,
        user_claim=settings.oidc_user_claim,
        roles_claim=settings.oidc_roles_claim,
        role_map=settings.oidc_role_map,
        leeway_seconds=settings.oidc_leeway_seconds,
        cache_seconds=settings.oidc_jwks_cache_seconds,
    )
