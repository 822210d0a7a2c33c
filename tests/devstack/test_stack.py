"""The whole local stack around the real app: one order from REST to ``confirmed`` over the WebSocket."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from devstack.stack import DevStack

from .conftest import threads_since, wait_until_ended

pytestmark = pytest.mark.integration

FAST = {"SWAP_LATENCY_MS": "0", "QUOTE_LATENCY_MS": "0", "CONFIRM_POLL_MS": "10"}


def test_an_order_goes_from_rest_to_confirmed_on_the_websocket_and_stop_cleans_up() -> None:
    threads_before = set(threading.enumerate())
    env_before = dict(os.environ)
    with DevStack(rest_port=0, ws_port=0, env=FAST) as stack:
        urls = stack.urls
        started = threads_since(threads_before)
        with httpx.Client(base_url=urls["rest"], headers={"x-api-key": "local-dev-key"}, timeout=10) as http:
            health = http.get("/health")
            assert health.status_code == 200, health.text
            accepted = http.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5"})
            assert accepted.status_code == 202, accepted.text
            order_id = accepted.json()["orderId"]
            assert accepted.json()["wsUrl"].startswith(urls["ws"])
            statuses: list[str] = []
            with connect(f"{urls['ws']}/?apiKey=local-dev-key&orderId={order_id}", open_timeout=10) as ws:
                deadline = time.monotonic() + 30
                while not statuses or statuses[-1] not in ("confirmed", "failed"):
                    message: dict[str, Any] = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                    if message.get("orderId") == order_id and "status" in message:
                        statuses.append(message["status"])
            assert statuses[-1] == "confirmed", statuses
            assert http.get(f"/api/orders/{order_id}").json()["status"] == "confirmed"
        with pytest.raises(InvalidStatus) as refused, connect(f"{urls['ws']}/?apiKey=wrong", open_timeout=10):
            pass
        assert refused.value.response.status_code == 401
    assert dict(os.environ) == env_before
    wait_until_ended(started | threads_since(threads_before))
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{urls['rest']}/health", timeout=2)


def test_the_environment_layers_config_then_shell_then_stack_then_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATE_LIMIT_PER_MIN", "7")
    monkeypatch.setenv("API_KEYS", "shell-key:shell")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    env_before = dict(os.environ)
    with DevStack(rest_port=0, ws_port=0, env={"MAX_ATTEMPTS": "5", **FAST}) as stack:
        assert os.environ["ORDERS_QUEUE"] == "order-engine-orders"  # .chalice/config.json
        assert os.environ["RATE_LIMIT_PER_MIN"] == "7"  # the shell's value beats the config's
        assert os.environ["MAX_ATTEMPTS"] == "5"  # an explicit value beats both
        assert os.environ["REDIS_URL"] == stack.urls["redis"] != "redis://127.0.0.1:1/0"
        assert os.environ["AWS_ENDPOINT_URL"] == stack.urls["aws"]
        assert os.environ["WS_MANAGEMENT_ENDPOINT"] == stack.urls["management"]
        assert os.environ["WS_PUBLIC_URL"] == stack.urls["ws"]
        assert stack.urls["api_key"] == "shell-key"
        health = httpx.get(f"{stack.urls['rest']}/health", timeout=10)
        assert health.status_code == 200, health.text
    assert dict(os.environ) == env_before


def test_ws_public_url_from_the_shell_is_the_base_of_ws_url_while_the_gateway_keeps_its_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WS_PUBLIC_URL", "wss://orders.example.test/local/")
    with DevStack(rest_port=0, ws_port=0, env=FAST) as stack:
        urls = stack.urls
        assert urls["ws_public"] == "wss://orders.example.test/local"
        assert "wsUrl base wss://orders.example.test/local (WS_PUBLIC_URL)" in stack.banner()
        accepted = httpx.post(f"{urls['rest']}/api/orders/execute", headers={"x-api-key": "local-dev-key"},
                              json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}, timeout=10)
        assert accepted.status_code == 202, accepted.text
        order_id = accepted.json()["orderId"]
        assert accepted.json()["wsUrl"] == f"wss://orders.example.test/local/?orderId={order_id}"
        with connect(f"{urls['ws']}/?apiKey=local-dev-key", open_timeout=10) as ws:  # still on its own port
            ws.send(json.dumps({"action": "ping"}))
            assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}


def test_without_ws_public_url_the_ws_url_is_the_gateways_own() -> None:
    with DevStack(rest_port=0, ws_port=0, env=FAST) as stack:
        assert stack.urls["ws_public"] == stack.urls["ws"]
        assert "WS_PUBLIC_URL" not in stack.banner()
