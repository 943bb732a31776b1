"""A local S3 server for the artifact store's tests: moto's, which speaks the S3 protocol
over HTTP, driven by the real boto3 client (credentials it accepts are any)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.support import free_port

REGION = "us-east-1"


def use_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's credential chain, pointed at values the local server takes."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@contextmanager
def s3_server() -> Iterator[str]:
    """A fresh server (its buckets die with it): its endpoint URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
