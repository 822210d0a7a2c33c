"""Shared fixtures: every tier may use these. Redis is the real one when it answers at
REDIS_URL (default redis://127.0.0.1:6379), else fakeredis.

A run leaves Redis as it found it: every key a test writes starts with this run's prefix
(``test-<run>``), each test gets a prefix of its own (``redis_prefix``), every local stack a
test starts inherits ``REDIS_PREFIX`` from the environment, and whatever remains under the run's
prefix is deleted when the run ends."""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

RUN_PREFIX = f"test-{uuid.uuid4().hex[:8]}"


def _real_redis() -> Any | None:
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2)
        client.ping()
        return client
    except Exception:
        return None


def delete_prefixed(client: Any, prefix: str) -> int:
    """Delete every key that starts with ``prefix``; returns how many there were."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])
    return len(keys)


@pytest.fixture(scope="session")
def redis_client() -> Iterator[Any]:
    client = _real_redis()
    if client is None:
        import fakeredis

        client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _redis_namespace() -> Iterator[None]:
    """Stacks started by tests write under the run's prefix, and nothing of the run outlives it."""
    previous = os.environ.get("REDIS_PREFIX")
    os.environ["REDIS_PREFIX"] = f"{RUN_PREFIX}-stack"
    yield
    if previous is None:
        os.environ.pop("REDIS_PREFIX", None)
    else:
        os.environ["REDIS_PREFIX"] = previous
    client = _real_redis()
    if client is not None:
        delete_prefixed(client, RUN_PREFIX)
        client.close()


@pytest.fixture
def redis_prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix of the test's own; every key under it is deleted afterwards."""
    prefix = f"{RUN_PREFIX}-{uuid.uuid4().hex[:10]}"
    yield prefix
    delete_prefixed(redis_client, f"{prefix}:")


@contextmanager
def stack_redis_prefix() -> Iterator[str]:
    """For tests that start the local stack: its keys under a prefix of their own (the stack's
    app reads REDIS_PREFIX from the environment), deleted afterwards from the Redis at
    REDIS_URL when one answers (an embedded one goes away with the stack)."""
    prefix = f"{RUN_PREFIX}-{uuid.uuid4().hex[:10]}"
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
            delete_prefixed(client, f"{prefix}:")
            client.close()


class AppLog:
    """What the engine logged while captured, one parsed JSON object per line."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, each of which must be exactly one JSON object."""
        parsed = []
        for line in self.text().splitlines():
            entry = json.loads(line)  # raises on a line that is not one JSON document
            assert isinstance(entry, dict), line
            parsed.append(entry)
        return parsed

    def with_message(self, message: str) -> list[dict[str, Any]]:
        return [entry for entry in self.lines() if entry["message"] == message]


@pytest.fixture
def app_log() -> Iterator[AppLog]:
    """The engine's log lines (every level) written to a buffer instead of stdout."""
    from chalicelib.logs import logger

    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    level = logger.log_level
    logger.setLevel(logging.DEBUG)
    try:
        yield AppLog(stream)
    finally:
        logger.setLevel(level)
        handler.setStream(previous)
