"""Fixtures for the local runtime's parts: each is tested alone, in front of a small Chalice app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from devstack.emulator import AwsEmulator

from ..conftest import stack_redis_prefix

CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "test", "aws_secret_access_key": "test"}


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Polls ``predicate`` until it is truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def devstack_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("devstack")}


def threads_since(before: set[threading.Thread]) -> set[threading.Thread]:
    """Threads started since ``before`` was taken (by the part under test, or its clients)."""
    return set(threading.enumerate()) - before


def wait_until_ended(threads: set[threading.Thread], timeout: float = 30.0) -> None:
    """Every one of ``threads`` ends; others, started or ended by anything else meanwhile, do not matter."""
    wait_until(lambda: not [t for t in threads if t.is_alive()], timeout=timeout)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    emulator = AwsEmulator()
    endpoint = emulator.start()
    yield endpoint
    emulator.stop()


@pytest.fixture
def sqs(moto_endpoint: str) -> Iterator[Any]:
    client = boto3.client("sqs", endpoint_url=moto_endpoint, **CREDENTIALS)
    yield client
    client.close()


@pytest.fixture(scope="module", autouse=True)
def _stack_keys_under_a_test_prefix() -> Iterator[str]:
    with stack_redis_prefix() as prefix:
        yield prefix
