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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from .conftest import TERMINAL, best_price, is_terminal_for, receive_until, wait_for_order

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST = {"SWAP_LATENCY_MS": "0", "QUOTE_LATENCY_MS": "0", "CONFIRM_POLL_MS": "10", "LOG_LEVEL": "WARNING",
        "QUOTE_TIMEOUT_MS": "30000"}  # no venue left out for being slow on a loaded machine


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


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("fork", ["1", "0"], ids=["app-parts-forked", "app-parts-each-its-own-interpreter"])
def test_an_order_through_the_processes_then_ctrl_c_stops_every_part_and_frees_every_port(
        folder: Path, fork: str) -> None:
    stack = Stack(folder, {**FAST, "DEVSTACK_FORK_APP_PARTS": fork}, "--no-state")
    try:
        assert set(stack.pids) >= {"dynamodb", "sqs", "gateway", "functions", "rest"}
        app_parts = {name: parent_of(stack.pids[name]) for name in ("gateway", "functions", "rest")}
        if fork == "1":  # forked from the one process that imported the app
            assert set(app_parts.values()) == {stack.pids["apps"]}
        else:
            assert "apps" not in stack.pids and set(app_parts.values()) == {stack.process.pid}
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


ENDED = {"confirmed", "failed", "expired", "cancelled"}
# The market's schedule and the expiry sweep first fire an hour after the start: only the second
# stack ends overdue orders, and the market moves by the tests' swaps (and by the walk's small ticks,
# applied whenever it is read).
STILL = {"MARKET_TICK_SECONDS": "3600", "EXPIRY_SWEEP_SECONDS": "3600", "LAUNCH_EVERY_SECONDS": "0"}


class Api:
    """A client of one stack, over its public REST API."""

    def __init__(self, stack: Stack) -> None:
        self.http = httpx.Client(base_url=stack.urls["rest"], headers={"x-api-key": stack.urls["api_key"]},
                                 timeout=30)

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def post(self, **order: Any) -> str:
        accepted = self.http.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1",
                                                               **order})
        assert accepted.status_code == 202, accepted.text
        return str(accepted.json()["orderId"])

    def limit(self, price: Decimal | str, **order: Any) -> str:
        text = price if isinstance(price, str) else format(price.quantize(Decimal("0.0001")), "f")
        return self.post(type="limit", limitPrice=text, **order)

    def order(self, order_id: str) -> dict[str, Any]:
        found = self.http.get(f"/api/orders/{order_id}")
        assert found.status_code == 200, found.text
        data: dict[str, Any] = found.json()
        return data

    def wait(self, order_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90) -> dict[str, Any]:
        return wait_for_order(self.order, order_id, done, timeout)

    def best_price(self) -> Decimal:
        return best_price(self.http)


def ended(order: dict[str, Any]) -> bool:
    return order["status"] in ENDED


def waiting(order: dict[str, Any]) -> bool:
    assert order["status"] in ("pending", "waiting"), order["history"]
    return order["status"] == "waiting"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_one_restart_with_orders_in_every_status_then_each_ends_as_it_would_have(folder: Path) -> None:
    state = folder / "state"
    # Swaps take 4 s, so that orders are in flight when the stack stops.
    before = Stack(folder, {**FAST, **STILL, "SWAP_LATENCY_MS": "4000"}, "--state-dir", str(state))
    try:
        with Api(before) as api:
            confirmed = api.post(amount="0.5")
            failed = api.post(amount="1000000")  # more than any pool can fill: fails, nothing is swapped
            cancelled, far, expiring = api.limit("1000"), api.limit("1000"), api.limit(
                "1000", expiresAt=iso(datetime.now(UTC) + timedelta(seconds=2)))
            for order_id in (cancelled, far, expiring):
                api.wait(order_id, waiting)
            assert api.http.delete(f"/api/orders/{cancelled}").json()["status"] == "cancelled"
            api.wait(confirmed, ended)
            api.wait(failed, ended)
            # above the market: it waits until another trader's swap lifts the price
            level = api.best_price() * Decimal("1.01")
            near = api.limit(level)
            api.wait(near, waiting)
            # every order below sells SOL: the price only moves away from the level until the restart
            in_flight = [api.post(amount=f"0.{i + 1}") for i in range(6)]
            # the expiring order's time passes while nothing sweeps: the next stack ends it
            expires_at = datetime.fromisoformat(api.order(expiring)["expiresAt"].replace("Z", "+00:00"))
            while datetime.now(UTC) <= expires_at:
                time.sleep(0.1)
            before_restart = {o: api.order(o) for o in (confirmed, failed, cancelled, far, near, expiring,
                                                        *in_flight)}
    finally:
        assert before.stop() == 0, before.output()
    statuses = {o: before_restart[o]["status"] for o in before_restart}
    assert [statuses[o] for o in (confirmed, failed, cancelled, far, near, expiring)] == [
        "confirmed", "failed", "cancelled", "waiting", "waiting", "waiting"], before_restart
    assert before_restart[failed]["error"]["code"] == "insufficient_liquidity"
    assert {statuses[o] for o in in_flight} - ENDED, "every order finished before the restart; none was in flight"

    after = Stack(folder, {**FAST, **STILL, "EXPIRY_SWEEP_SECONDS": "1"}, "--state-dir", str(state))
    try:
        assert any(line.startswith("dynamodb:") for line in after.restored), after.restored
        with Api(after) as api:
            listed = {o["orderId"] for o in api.http.get("/api/orders", params={"limit": "100"}).json()["orders"]}
            assert set(before_restart) <= listed
            # the ended ones are exactly as they were: same history, same error, nothing added
            for order_id in (confirmed, failed, cancelled):
                assert api.order(order_id) == before_restart[order_id]
            # the overdue one ends expired on the sweep's schedule; it never ran
            gone = api.wait(expiring, ended)
            assert [e["status"] for e in gone["history"]] == ["pending", "waiting", "expired"]
            assert gone["history"][-1]["data"]["expiresAt"] == gone["expiresAt"]
            # the far one keeps waiting, and can still be cancelled
            assert api.order(far)["status"] == "waiting"
            resp = api.http.delete(f"/api/orders/{far}")
            assert resp.status_code == 200 and resp.json()["status"] == "cancelled", resp.text
            # in flight: each ends confirmed, with one swap
            for order_id in in_flight:
                order = api.wait(order_id, ended)
                assert order["status"] == "confirmed", order["history"]
                assert [e["status"] for e in order["history"]].count("confirmed") == 1
            # the near one still waits, over the socket too, and another trader's swap triggers it
            assert api.order(near)["status"] == "waiting"
            key = after.urls["api_key"]
            with connect(f"{after.urls['ws']}/?apiKey={key}&orderId={near}", open_timeout=10) as ws:
                [snapshot] = receive_until(ws, lambda m: m["type"] == "order.snapshot")
                assert snapshot["status"] == "waiting"
                for _ in range(5):
                    buy = api.post(tokenIn="USDC", tokenOut="SOL", amount="4000000", slippageBps=1000)
                    assert api.wait(buy, ended)["status"] == "confirmed"
                    if api.order(near)["status"] != "waiting":
                        break
                live = receive_until(ws, lambda m: m.get("orderId") == near and m.get("status") in ENDED,
                                     timeout=90)
            statuses_live = [m["status"] for m in live]
            assert statuses_live[0] == "routing" and statuses_live.count("confirmed") == 1, live
            assert [m["seq"] for m in live] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 1 + len(live)))
            order = api.order(near)
            assert order["history"][2]["data"]["trigger"]["kind"] == "price"
            assert Decimal(order["executedPrice"]) >= Decimal(order["limitPrice"])
            assert order["history"][:2] == before_restart[near]["history"]
    finally:
        assert after.stop() == 0, after.output()


def saved_statuses(path: Path) -> dict[str, str]:
    """The orders' statuses in the DynamoDB emulator's last snapshot on disk."""
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    items = document["tables"]["order-engine-orders"]["items"]
    return {item["orderId"]["S"]: item["status"]["S"] for item in items if "status" in item}


def test_a_kill_9_after_a_snapshot_period_loses_nothing_of_what_was_saved(folder: Path) -> None:
    state = folder / "state"
    stack = Stack(folder, {**FAST, **STILL}, "--state-dir", str(state))
    try:
        with Api(stack) as api:
            confirmed, far = api.post(), api.limit("1000")
            done = api.wait(confirmed, ended)
            assert done["status"] == "confirmed"
            api.wait(far, waiting)
        # the periodic snapshot catches up (every SNAPSHOT_SECONDS); no Ctrl-C, no save on the way out
        deadline = time.monotonic() + 60
        while saved_statuses(state / "dynamodb.json") != {confirmed: "confirmed", far: "waiting"}:
            assert time.monotonic() < deadline, saved_statuses(state / "dynamodb.json")
            time.sleep(0.1)
    finally:
        kill_9(stack)

    again = Stack(folder, FAST, "--state-dir", str(state))
    try:
        assert any(line.startswith("dynamodb:") for line in again.restored), again.restored
        with Api(again) as api:
            assert api.order(confirmed) == done
            assert api.order(far)["status"] == "waiting"
            resp = api.http.delete(f"/api/orders/{far}")
            assert resp.status_code == 200 and resp.json()["status"] == "cancelled", resp.text
            _, messages = post_and_follow(again)
            assert messages[-1]["status"] == "confirmed"
    finally:
        assert again.stop() == 0, again.output()


def kill_9(stack: Stack) -> None:
    """The supervisor and every part at once, as a crash or `kill -9` would: nothing saved on the way out."""
    os.kill(stack.process.pid, signal.SIGKILL)
    for pid in stack.pids.values():  # each part leads a process group of its own
        os.killpg(pid, signal.SIGKILL)
    assert stack.process.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while [name for name, pid in stack.pids.items() if alive(pid)]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_kill_9_just_after_a_swap_was_sent_does_not_swap_it_twice(folder: Path) -> None:
    state = folder / "state"
    # The kill comes as soon as the order's transaction was sent, so the last snapshot (one every
    # 2 s) most likely holds the order before that, or not at all; swaps take 4 s, so the
    # transaction is still on its way at the kill, and lands after the restart.
    stack = Stack(folder, {**FAST, **STILL, "QUOTE_LATENCY_MS": "1500", "SWAP_LATENCY_MS": "4000"},
                  "--state-dir", str(state))
    try:
        with Api(stack) as api:
            order_id = api.post()
            submitted = api.wait(order_id, lambda o: o["status"] not in ("pending", "routing", "building"))
    finally:
        kill_9(stack)
    assert submitted["status"] == "submitted", submitted["history"]
    signature = submitted["history"][-1]["data"]["signature"]

    again = Stack(folder, FAST, "--state-dir", str(state))
    try:
        with Api(again) as api:
            order = api.wait(order_id, ended)
    finally:
        assert again.stop() == 0, again.output()
    # the transaction sent before the kill is the one that landed: no second one was built
    assert order["status"] == "confirmed" and order["txHash"] == signature, order["history"]
    assert [e["status"] for e in order["history"]].count("submitted") == 1


def test_a_corrupt_snapshot_gives_a_clear_message_and_an_empty_start(folder: Path) -> None:
    state = folder / "state"
    state.mkdir()
    (state / "dynamodb.json").write_text('{"format": "order-engine-local-state", "version": 1, "part": "dyn')
    # the writes after that snapshot: without it they would make a table of fragments
    put = {"TableName": "order-engine-orders", "Item": {"orderId": {"S": "ord_x"}, "status": {"S": "waiting"}}}
    (state / "dynamodb.journal").write_text(json.dumps({"seq": 7, "target": "DynamoDB_20120810.PutItem",
                                                        "body": json.dumps(put)}) + "\n")
    # a snapshot of the right form whose content does not fit
    (state / "sqs.json").write_text(json.dumps({"format": "order-engine-local-state", "version": 1, "part": "sqs",
                                                "region": "us-east-1", "queues": {"order-engine-orders": {
                                                    "attributes": {}, "messages": [{"id": "m1"}]}}}))
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
    assert "dynamodb.journal: its snapshot could not be restored" in output
    assert "sqs.json: cannot be restored (KeyError: 'body')" in output
    assert {p.name for p in state.glob("*.corrupt")} == {"dynamodb.json.corrupt", "dynamodb.journal.corrupt",
                                                        "sqs.json.corrupt"}
