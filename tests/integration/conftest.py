"""Integration tier: the whole local stack started in process on random free ports, driven
as a client drives it, over real HTTP and real WebSocket connections.

``LOCALSTACK_ENDPOINT`` (or ``LOCALSTACK_HOST``) points the ``localstack``-marked tests at a
LocalStack instead of the embedded emulator; when nothing answers there they are skipped.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from devstack.stack import DevStack

from ..conftest import stack_redis_prefix

KEY_A, KEY_B = "it-key-a", "it-key-b"
TERMINAL = {"confirmed", "failed"}
STACK_ENV = {
    "API_KEYS": f"{KEY_A}:it-client-a,{KEY_B}:it-client-b,local-dev-key:local",
    "QUOTE_LATENCY_MS": "0,5",
    "QUOTE_TIMEOUT_MS": "30000",  # no venue left out for being slow on a loaded machine
    "SWAP_LATENCY_MS": "50,150",
    "CONFIRM_POLL_MS": "20",
    "RATE_LIMIT_PER_MIN": "10000",
}


def localstack_endpoint() -> str:
    explicit = os.environ.get("LOCALSTACK_ENDPOINT")
    if explicit:
        return explicit.rstrip("/")
    return f"http://{os.environ.get('LOCALSTACK_HOST', '127.0.0.1:4566')}"


def localstack_answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with DevStack(rest_port=0, ws_port=0, env=STACK_ENV) as s:
        yield s


def wait_for_order(read: Callable[[str], dict[str, Any]], order_id: str, done: Callable[[dict[str, Any]], bool],
                   timeout: float = 60) -> dict[str, Any]:
    """The order as ``read`` gives it, once ``done`` says so; fails with its status and history
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        order = read(order_id)
        if done(order):
            return order
        assert time.monotonic() < deadline, f"{order_id} still {order['status']}: {order.get('history')}"
        time.sleep(0.1)


def best_price(http: httpx.Client, token_in: str = "SOL", token_out: str = "USDC", amount: str = "1") -> Decimal:
    """The best venue's price for ``amount`` now (tokenOut per tokenIn). Asked again until every
    venue answers: one whose quote timed out would make the other look like the best."""
    for _ in range(50):
        quotes = http.get("/api/quotes", params={"tokenIn": token_in, "tokenOut": token_out, "amount": amount}).json()
        if len(quotes["quotes"]) == 2:  # raydium and meteora
            return max(Decimal(q["amountOut"]) for q in quotes["quotes"]) / Decimal(amount)
        time.sleep(0.1)
    raise AssertionError(f"a venue never quoted: {quotes}")


class Client:
    """A trader's backend: REST calls and WebSocket sessions with one API key."""

    def __init__(self, stack: DevStack, key: str) -> None:
        self.rest = stack.urls["rest"]
        self.ws = stack.urls["ws"]
        self.key = key
        self.http = httpx.Client(base_url=self.rest, headers={"x-api-key": key}, timeout=30)

    def post(self, **body: Any) -> httpx.Response:
        payload = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", "slippageBps": 100, **body}
        return self.http.post("/api/orders/execute", json=payload)

    def order(self, order_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get(f"/api/orders/{order_id}").json()
        return data

    def socket(self, **params: str) -> ClientConnection:
        return connect(f"{self.ws}/?{urlencode({'apiKey': self.key, **params})}", open_timeout=10)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def client_a(stack: DevStack) -> Iterator[Client]:
    c = Client(stack, KEY_A)
    yield c
    c.close()


@pytest.fixture
def client_b(stack: DevStack) -> Iterator[Client]:
    c = Client(stack, KEY_B)
    yield c
    c.close()


def receive_until(ws: ClientConnection, done: Any, timeout: float = 30) -> list[dict[str, Any]]:
    """Collect messages until ``done(message)`` is true; fail on timeout."""
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; received {messages}")
        try:
            raw = ws.recv(timeout=left)
        except TimeoutError:
            raise AssertionError(f"timed out; received {messages}") from None
        message = json.loads(raw)
        messages.append(message)
        if done(message):
            return messages


def submit_and_wait(rest: str, key: str = KEY_A, timeout: float = 60) -> str:
    """POST one small market order and poll it until it is terminal; returns its final status."""
    with httpx.Client(base_url=rest, headers={"x-api-key": key}, timeout=10) as http:
        order_id = http.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC",
                                                          "amount": "1"}).json()["orderId"]
        deadline = time.monotonic() + timeout
        status = "pending"
        while status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(0.1)
            status = http.get(f"/api/orders/{order_id}").json()["status"]
        return str(status)


def is_terminal_for(order_id: str) -> Any:
    return lambda m: m.get("orderId") == order_id and m.get("status") in TERMINAL and m["type"] == "order.status"


@pytest.fixture(scope="module", autouse=True)
def _stack_keys_under_a_test_prefix() -> Iterator[str]:
    with stack_redis_prefix() as prefix:
        yield prefix
