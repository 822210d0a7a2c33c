"""Retries through the real queue: back-off by visibility, then failure with the reason persisted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from devstack.stack import DevStack

from .conftest import KEY_A, STACK_ENV, TERMINAL


@pytest.fixture(scope="module")
def flaky_venues() -> Iterator[DevStack]:
    env = {**STACK_ENV, "QUOTE_TIMEOUT_RATE": "1.0", "RETRY_BASE_SECONDS": "1"}
    with DevStack(rest_port=0, ws_port=0, env=env) as stack:
        yield stack


def test_an_order_whose_venues_never_answer_is_retried_then_failed_with_its_reason(
        flaky_venues: DevStack) -> None:
    with httpx.Client(base_url=flaky_venues.urls["rest"], headers={"x-api-key": KEY_A}, timeout=10) as http:
        order_id = http.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC",
                                                          "amount": "1"}).json()["orderId"]
        deadline = time.monotonic() + 60
        order = http.get(f"/api/orders/{order_id}").json()
        while order["status"] not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.2)
            order = http.get(f"/api/orders/{order_id}").json()
    assert order["status"] == "failed"
    assert order["error"]["code"] == "no_route" and order["error"]["retryable"] is True
    assert order["error"]["attempt"] == 3
    history = [(e["status"], e["data"].get("attempt")) for e in order["history"]]
    # pending -> routing -> pending(2) -> routing -> pending(3) -> routing -> failed
    assert [s for s, _ in history] == ["pending", "routing", "pending", "routing", "pending", "routing", "failed"]
    assert [a for s, a in history if s == "pending"][1:] == [2, 3]

    def t(i: int) -> float:
        return datetime.fromisoformat(order["history"][i]["at"].replace("Z", "+00:00")).timestamp()

    # the queue held the message back 1 s, then 2 s (base 1 s, doubled), before each new attempt
    assert t(3) - t(2) >= 0.9 and t(5) - t(4) >= 1.9
