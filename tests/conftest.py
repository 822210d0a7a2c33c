"""Shared fixtures: every tier may use these. Redis is the real one when it answers at
REDIS_URL (default redis://127.0.0.1:6379), else fakeredis; keys get a random prefix so
tests can share one server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


def _real_redis() -> Any | None:
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
        client.ping()
        return client
    except Exception:
        return None


@pytest.fixture(scope="session")
def redis_client() -> Iterator[Any]:
    client = _real_redis()
    if client is None:
        import fakeredis

        client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix of the test's own; every key under it is deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    delete_prefix(redis_client, prefix)


def delete_prefix(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])
