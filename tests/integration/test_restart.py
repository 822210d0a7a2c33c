"""Starting and stopping the stack leaves the process as it found it."""

from __future__ import annotations

import os
import threading
import time

import httpx

from devstack.stack import DevStack

from .conftest import STACK_ENV, submit_and_wait


def test_restart_leaves_no_thread_behind_and_serves_again() -> None:
    before = set(threading.enumerate())
    env_before = dict(os.environ)
    started: set[threading.Thread] = set()
    for _ in range(2):
        with DevStack(rest_port=0, ws_port=0, env=STACK_ENV) as stack:
            rest = stack.urls["rest"]
            assert httpx.get(f"{rest}/health", timeout=10).status_code == 200
            status = submit_and_wait(rest, timeout=30)
            assert status == "confirmed"
            started |= set(threading.enumerate()) - before
    # Each thread the stacks started ends; how long that takes on a loaded machine does not matter.
    deadline = time.monotonic() + 60
    while [t for t in started if t.is_alive()] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [t.name for t in started if t.is_alive()]
    assert dict(os.environ) == env_before
