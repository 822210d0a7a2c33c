"""A burst on the whole local stack: every POST gets an answer, none a connection error."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter

import pytest

from bench.burst import post_burst, raise_open_files_limit
from devstack.stack import DevStack

pytestmark = pytest.mark.integration

POSTS = 300  # the goal is 1,000 (bench.burst measures it); 300 shows it in a test's share of 2 cores
FAST = {"SWAP_LATENCY_MS": "0", "QUOTE_LATENCY_MS": "0", "CONFIRM_POLL_MS": "10", "LOG_LEVEL": "WARNING"}


def test_300_concurrent_posts_on_300_connections_are_each_answered_202_or_429() -> None:
    raise_open_files_limit(4 * POSTS + 512)
    # A prefix of its own: the burst spends its client's rate limit for the minute, which a test that
    # starts a stack after it, with the same key, must not inherit.
    prefix = f"{os.environ.get('REDIS_PREFIX', 'oe')}-burst-{uuid.uuid4().hex[:6]}"
    with DevStack(rest_port=0, ws_port=0, env={**FAST, "REDIS_PREFIX": prefix}) as stack:
        outcomes = Counter(asyncio.run(post_burst(stack.urls["rest"], stack.urls["api_key"], POSTS, timeout=300)))
    assert sum(outcomes.values()) == POSTS
    assert set(outcomes) <= {"202", "429"}, outcomes  # no reset, refused or unanswered connection
    assert outcomes["202"] >= 1
