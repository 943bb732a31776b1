"""The Temporal data converter every client and worker here uses: pydantic models to JSON
and back, exactly as `temporalio.contrib.pydantic.pydantic_data_converter` does (the two
read each other's payloads), with one payload converter for the whole process.

Why not that converter as it is: the SDK builds a new DataConverter for every workflow
activation, to carry the activation's serialization context, and each new DataConverter
builds a new payload converter from its class. PydanticPayloadConverter's constructor
makes a JSON serializer and an empty TypeAdapter cache, so every activation rebuilt the
type adapters of the payloads it decoded: measured on 2026-12-04, a sixth of the worker's
time in an activation went to that (loadtest/results/2026-12-04-cost-of-a-turn.md). Here
the class hands out one instance, built once, whose cache lives as long as the process.
Nothing in it depends on the context: the SDK's own converters ignore it."""

from __future__ import annotations

import threading
from typing import ClassVar

from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import DataConverter


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """PydanticPayloadConverter, built once per process however often it is asked for."""

    _instance: ClassVar[SharedPydanticPayloadConverter | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __new__(cls) -> SharedPydanticPayloadConverter:
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    instance = super().__new__(cls)
                    PydanticPayloadConverter.__init__(instance)
                    cls._instance = instance
        return cls._instance

    def __init__(self) -> None:
        """Built in `__new__`, once: called again on every request, it keeps the cache."""


data_converter = DataConverter(payload_converter_class=SharedPydanticPayloadConverter)
