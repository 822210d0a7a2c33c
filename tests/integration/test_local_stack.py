"""The local stack end to end, as a client sees it."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from devstack.stack import DevStack

from .conftest import TERMINAL, Client, is_terminal_for, receive_until


def test_health_reports_every_part_ready(stack: DevStack) -> None:
    resp = httpx.get(f"{stack.urls['rest']}/health", timeout=10)
    assert resp.status_code == 200
    assert set(resp.json()["checks"].values()) == {"ok"}


def test_market_order_from_post_to_confirmed_over_the_socket(client_a: Client) -> None:
    accepted = client_a.post()
    assert accepted.status_code == 202
    order_id = accepted.json()["orderId"]
    with client_a.socket() as ws:
        ws.send(json.dumps({"action": "subscribe", "orderId": order_id}))
        messages = receive_until(ws, is_terminal_for(order_id))
    snapshot, *live = messages
    assert snapshot["type"] == "order.snapshot" and snapshot["orderId"] == order_id
    seqs = [snapshot["seq"]] + [m["seq"] for m in live]
    assert seqs == list(range(snapshot["seq"], snapshot["seq"] + len(seqs)))  # no gap, no duplicate
    statuses = [e["status"] for e in snapshot["order"]["history"]] + [m["status"] for m in live]
    assert statuses == ["pending", "routing", "building", "submitted", "confirmed"]
    confirmed = live[-1] if live else snapshot["order"]["history"][-1]
    assert confirmed["data"]["txHash"] and confirmed["data"]["amountOut"]
    stored = client_a.order(order_id)
    assert stored["status"] == "confirmed" and stored["txHash"] == confirmed["data"]["txHash"]


def test_subscribe_at_connect_with_order_id(client_a: Client) -> None:
    order_id = client_a.post().json()["orderId"]
    with client_a.socket(orderId=order_id) as ws:
        messages = receive_until(ws, is_terminal_for(order_id))
    assert messages[0]["type"] == "order.snapshot"
    assert [m["status"] for m in messages[1:]] == \
        ["pending", "routing", "building", "submitted", "confirmed"][messages[0]["seq"]:]


def test_reconnect_with_after_seq_gets_only_what_it_missed(client_a: Client) -> None:
    order_id = client_a.post().json()["orderId"]
    with client_a.socket(orderId=order_id) as ws:  # follow it until it is submitted, then drop
        receive_until(ws, lambda m: m.get("status") == "submitted" or m.get("status") in TERMINAL)
    with client_a.socket() as ws:
        ws.send(json.dumps({"action": "subscribe", "orderId": order_id, "afterSeq": 2}))
        messages = receive_until(ws, is_terminal_for(order_id))
    assert [m["type"] for m in messages] == ["order.status"] * len(messages)  # no snapshot
    assert [m["seq"] for m in messages] == list(range(3, 3 + len(messages)))
    assert messages[-1]["status"] == "confirmed"


def test_two_clients_are_isolated(client_a: Client, client_b: Client) -> None:
    order_a = client_a.post().json()["orderId"]
    with client_a.socket() as ws_a, client_b.socket() as ws_b:
        ws_b.send(json.dumps({"action": "subscribe", "orderId": order_a}))
        refused = receive_until(ws_b, lambda m: m["type"] == "error", timeout=10)
        assert refused[-1]["code"] == "not_found"
        ws_a.send(json.dumps({"action": "subscribe", "orderId": order_a}))
        receive_until(ws_a, is_terminal_for(order_a))
        ws_b.send(json.dumps({"action": "ping"}))
        after = receive_until(ws_b, lambda m: m["type"] == "pong", timeout=10)
        assert all(m.get("orderId") != order_a for m in after)  # nothing of A's order reached B
    assert client_b.http.get(f"/api/orders/{order_a}").status_code == 404


def test_execute_over_the_socket(client_a: Client) -> None:
    with client_a.socket() as ws:
        ws.send(json.dumps({"action": "execute", "order": {"tokenIn": "USDC", "tokenOut": "SOL", "amount": "25",
                                                             "slippageBps": 100}}))
        accepted = receive_until(ws, lambda m: m["type"] in ("order.accepted", "error"), timeout=10)[-1]
        assert accepted["type"] == "order.accepted", accepted
        order_id = accepted["orderId"]
        messages = receive_until(ws, is_terminal_for(order_id))
    statuses = [m["status"] for m in messages if m["type"] == "order.status"]
    assert statuses[-1] == "confirmed"
    building = next(m for m in messages if m.get("status") == "building")
    assert building["data"]["wrapSol"] is False and building["data"]["unwrapSol"] is True


def test_bad_key_is_refused_at_the_handshake(stack: DevStack) -> None:
    c = Client(stack, "not-a-key")
    with pytest.raises(InvalidStatus) as info:
        c.socket()
    assert info.value.response.status_code in (401, 403)
    c.close()


def test_burst_of_fifty_orders_all_reach_a_terminal_state(client_a: Client) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda i: client_a.post(amount=f"0.{i + 1:02d}"), range(50)))
    assert [r.status_code for r in responses] == [202] * 50
    ids = {r.json()["orderId"] for r in responses}
    deadline = time.monotonic() + 120
    final: dict[str, str] = {}
    while len(final) < len(ids) and time.monotonic() < deadline:
        for order_id in ids - set(final):
            status = client_a.order(order_id)["status"]
            if status in TERMINAL:
                final[order_id] = status
        time.sleep(0.2)
    assert len(final) == 50, f"{50 - len(final)} orders not terminal"
    assert set(final.values()) == {"confirmed"}
