"""Shared fixtures: every tier may use these. Redis is the real one when it answers at
REDIS_URL (default redis://127.0.0.1:6379), else fakeredis; keys get a random prefix so
tests can share one server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def stack_redis_prefix() -> Iterator[str]:
    """For tests that start the local stack: its keys under a prefix of their own (the stack's
    app reads REDIS_PREFIX from the environment), deleted afterwards from the Redis at
    REDIS_URL when one answers (an embedded one goes away with the stack)."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    saved = os.environ.get("REDIS_PREFIX")
    os.environ["REDIS_PREFIX"] = prefix
    try:
        yield prefix
    finally:
        if saved is None:
            os.environ.pop("REDIS_PREFIX", None)
        else:
            os.environ["REDIS_PREFIX"] = saved
        client = _real_redis()
        if client is not None:
            delete_prefix(client, prefix)
            client.close()


def delete_prefix(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])
