"""``order-engine run`` as ``make run`` starts it: one process per part under a supervisor,
driven from outside. Ctrl-C stops every part and frees every port; the state survives a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from .conftest import TERMINAL, is_terminal_for, receive_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST = {"SWAP_LATENCY_MS": "0", "QUOTE_LATENCY_MS": "0", "CONFIRM_POLL_MS": "10", "LOG_LEVEL": "WARNING"}


class Stack:
    def __init__(self, folder: Path, env: dict[str, str], *args: str) -> None:
        self.ready = folder / f"ready-{time.monotonic_ns()}.json"
        self.log = folder / "stack.log"
        argv = [sys.executable, "-m", "devstack.cli", "run", "--rest-port", "0", "--ws-port", "0", "--aws-port", "0",
                "--sqs-port", "0", "--ready-file", str(self.ready), *args]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while not self.ready.exists():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.05)
        info = json.loads(self.ready.read_text())
        self.urls: dict[str, str] = info["urls"]
        self.pids: dict[str, int] = info["pids"]
        self.restored: list[str] = info["restored"]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=90)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() \
        else "X"
    return status != "Z"


def port_free(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is no listener
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def post_and_follow(stack: Stack, **order: Any) -> tuple[str, list[dict[str, Any]]]:
    key = stack.urls["api_key"]
    with httpx.Client(base_url=stack.urls["rest"], headers={"x-api-key": key}, timeout=30) as http:
        assert http.get("/health").status_code == 200
        accepted = http.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1",
                                                          **order})
        assert accepted.status_code == 202, accepted.text
        order_id = accepted.json()["orderId"]
    with connect(f"{stack.urls['ws']}/?apiKey={key}&orderId={order_id}", open_timeout=10) as ws:
        # the order may have ended before the socket subscribed: then its snapshot is the end
        return order_id, receive_until(ws, lambda m: is_terminal_for(order_id)(m) or (
            m["type"] == "order.snapshot" and m["status"] in TERMINAL), timeout=60)


def test_an_order_through_the_processes_then_ctrl_c_stops_every_part_and_frees_every_port(folder: Path) -> None:
    stack = Stack(folder, FAST, "--no-state")
    try:
        assert set(stack.pids) >= {"dynamodb", "sqs", "gateway", "functions", "rest"}
        _, messages = post_and_follow(stack)
        assert messages[-1]["status"] == "confirmed"
    finally:
        code = stack.stop(signal.SIGINT)
    assert code == 0, stack.output()
    assert not [name for name, pid in stack.pids.items() if alive(pid)]
    for name in ("rest", "ws", "aws", "sqs"):
        assert port_free(stack.urls[name]), name


def test_a_part_that_dies_stops_the_stack_with_a_message(folder: Path) -> None:
    stack = Stack(folder, FAST, "--no-state")
    os.kill(stack.pids["functions"], signal.SIGKILL)
    assert stack.process.wait(timeout=60) == 1
    assert "the functions process exited on its own" in stack.output()
    assert not [name for name, pid in stack.pids.items() if alive(pid)]


def test_orders_survive_a_restart_and_those_in_flight_finish(folder: Path) -> None:
    state = folder / "state"
    slow = {**FAST, "SWAP_LATENCY_MS": "4000"}  # orders wait in submitted while the stack stops
    stack = Stack(folder, slow, "--state-dir", str(state))
    key = stack.urls["api_key"]
    try:
        done, _ = post_and_follow(stack, amount="0.5")
        with httpx.Client(base_url=stack.urls["rest"], headers={"x-api-key": key}, timeout=30) as http:
            in_flight = [http.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC",
                                                                 "amount": f"0.{i + 1}"}).json()["orderId"]
                         for i in range(6)]
            statuses = {http.get(f"/api/orders/{o}").json()["status"] for o in in_flight}
    finally:
        assert stack.stop() == 0, stack.output()
    assert statuses - TERMINAL, "every order finished before the restart; nothing was in flight"
    again = Stack(folder, FAST, "--state-dir", str(state))
    try:
        assert any(line.startswith("dynamodb:") for line in again.restored), again.restored
        with httpx.Client(base_url=again.urls["rest"], headers={"x-api-key": key}, timeout=30) as http:
            assert http.get(f"/api/orders/{done}").json()["status"] == "confirmed"
            deadline = time.monotonic() + 90
            final: dict[str, str] = {}
            while len(final) < len(in_flight) and time.monotonic() < deadline:
                for order_id in set(in_flight) - set(final):
                    order = http.get(f"/api/orders/{order_id}").json()
                    if order["status"] in TERMINAL:
                        final[order_id] = order["status"]
                time.sleep(0.2)
            assert set(final.values()) == {"confirmed"}, final
            swaps = [e for o in in_flight for e in http.get(f"/api/orders/{o}").json()["history"]
                     if e["status"] == "confirmed"]
            assert len(swaps) == len(in_flight)  # each confirmed once, none twice
    finally:
        assert again.stop() == 0, again.output()


def test_a_corrupt_snapshot_gives_a_clear_message_and_an_empty_start(folder: Path) -> None:
    state = folder / "state"
    state.mkdir()
    (state / "dynamodb.json").write_text('{"format": "order-engine-local-state", "version": 1, "part": "dyn')
    (state / "sqs.json").write_text(json.dumps({"format": "something else"}))
    stack = Stack(folder, FAST, "--state-dir", str(state))
    try:
        assert stack.restored == []
        with httpx.Client(base_url=stack.urls["rest"], headers={"x-api-key": stack.urls["api_key"]}) as http:
            assert http.get("/health").status_code == 200
            assert http.get("/api/orders").json()["orders"] == []
    finally:
        assert stack.stop() == 0
    output = stack.output()
    assert "dynamodb.json: not a complete snapshot" in output and "this part starts empty" in output
    assert "sqs.json: not a sqs snapshot" in output
    assert (state / "dynamodb.json.corrupt").exists()
