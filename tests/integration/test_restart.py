"""Starting and stopping the stack leaves the process as it found it."""

from __future__ import annotations

import os
import threading
import time

import httpx

from devstack.stack import LocalStack

from .conftest import KEY_A, STACK_ENV, TERMINAL


def test_restart_leaves_no_thread_behind_and_serves_again() -> None:
    before = {t.ident for t in threading.enumerate()}
    env_before = dict(os.environ)
    for _ in range(2):
        with LocalStack(rest_port=0, ws_port=0, env=STACK_ENV) as stack:
            rest = stack.urls["rest"]
            assert httpx.get(f"{rest}/health", timeout=10).status_code == 200
            order_id = httpx.post(f"{rest}/api/orders/execute", headers={"x-api-key": KEY_A}, timeout=10,
                                  json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}).json()["orderId"]
            deadline = time.monotonic() + 30
            status = "pending"
            while status not in TERMINAL and time.monotonic() < deadline:
                time.sleep(0.1)
                status = httpx.get(f"{rest}/api/orders/{order_id}", headers={"x-api-key": KEY_A},
                                   timeout=10).json()["status"]
            assert status == "confirmed"
    deadline = time.monotonic() + 5
    left = [t for t in threading.enumerate() if t.ident not in before]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not left, [t.name for t in left]
    assert dict(os.environ) == env_before
