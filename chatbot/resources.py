"""The gateway's long-lived clients, built once in the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from chatbot.errors import Unavailable
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
        await self.redis.aclose()
        await self.stream_redis.aclose()
        await self.engine.dispose()
