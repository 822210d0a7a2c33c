"""Limit orders on the whole local stack: they wait, the market's swaps trigger them through the
market events queue and the matcher, they expire on the sweep's schedule, and a client cancels
them over REST or its socket."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from . import conftest
from .conftest import Client, receive_until

ENDED = {"confirmed", "failed", "expired", "cancelled"}


def best_price(client: Client, token_in: str = "SOL", token_out: str = "USDC", amount: str = "1") -> Decimal:
    return conftest.best_price(client.http, token_in, token_out, amount)


def limit(client: Client, limit_price: Decimal | str, **body: Any) -> str:
    text = limit_price if isinstance(limit_price, str) else format(limit_price.quantize(Decimal("0.0001")), "f")
    resp = client.post(type="limit", limitPrice=text, amount=body.pop("amount", "1"), **body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["orderId"])


def wait_for(client: Client, order_id: str, done: Any, timeout: float = 60) -> dict[str, Any]:
    return conftest.wait_for_order(client.order, order_id, done, timeout)


def test_a_limit_order_above_the_price_waits_then_other_traders_swaps_trigger_it(client_a: Client) -> None:
    level = best_price(client_a) * Decimal("1.002")
    order_id = limit(client_a, level)
    # Armed: it waited, below its level. (The market's own random walk may already have crossed
    # the level since, and triggered it: its history says what happened, whenever it is read.)
    armed = wait_for(client_a, order_id, lambda o: o["status"] != "pending")
    assert armed["history"][1]["status"] == "waiting", armed["history"]
    assert Decimal(armed["history"][1]["data"]["bestPrice"]) < level

    # Another trader buys SOL where it is cheapest, so much that it ends dearer there than the
    # level: that swap crosses it (again, should the market's random walk have moved it away).
    for _ in range(5):
        buy = client_a.post(tokenIn="USDC", tokenOut="SOL", amount="4000000", slippageBps=1000).json()["orderId"]
        wait_for(client_a, buy, lambda o: o["status"] in ENDED)
        if client_a.order(order_id)["status"] != "waiting":
            break
    order = wait_for(client_a, order_id, lambda o: o["status"] in ENDED)
    statuses = [e["status"] for e in order["history"]]
    assert statuses[:3] == ["pending", "waiting", "routing"] and statuses[-1] == "confirmed", statuses
    trigger = order["history"][2]["data"]["trigger"]
    assert trigger["kind"] == "price" and Decimal(trigger["price"]) >= level
    assert Decimal(order["executedPrice"]) >= Decimal(order["limitPrice"])
    assert Decimal(order["minAmountOut"]) >= Decimal(order["limitPrice"])  # 1 SOL: the limit, on chain


def test_a_waiting_order_ends_expired_on_the_sweeps_schedule(client_a: Client) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    order_id = limit(client_a, "1000", expiresAt=expires.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    order = wait_for(client_a, order_id, lambda o: o["status"] in ENDED)
    assert [e["status"] for e in order["history"]] == ["pending", "waiting", "expired"]
    assert order["history"][-1]["data"]["expiresAt"] == order["expiresAt"]


def test_a_client_cancels_over_its_socket_and_over_rest(client_a: Client, client_b: Client) -> None:
    first, second = limit(client_a, "1000"), limit(client_a, "1000")
    wait_for(client_a, first, lambda o: o["status"] == "waiting")
    with client_a.socket(orderId=first) as ws:
        receive_until(ws, lambda m: m.get("type") == "order.snapshot")
        ws.send(json.dumps({"action": "cancel", "orderId": first}))
        [*_, cancelled] = receive_until(ws, lambda m: m.get("status") == "cancelled")
        assert cancelled["type"] == "order.status" and cancelled["data"] == {"by": "client"}
        ws.send(json.dumps({"action": "cancel", "orderId": first}))
        [refused] = receive_until(ws, lambda m: m.get("type") == "error")
        assert refused["code"] == "not_cancellable" and refused["orderId"] == first

    # another client cannot see it, let alone cancel it
    assert client_b.http.delete(f"/api/orders/{second}").status_code == 404
    resp = client_a.http.delete(f"/api/orders/{second}")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    again = client_a.http.delete(f"/api/orders/{second}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_cancellable"
    active = client_a.http.get("/api/orders", params={"status": "active"}).json()["orders"]
    assert {first, second}.isdisjoint(o["orderId"] for o in active)


def test_the_cli_submits_a_limit_order_and_cancels_it(stack: Any, client_a: Client,
                                                      capsys: Any) -> None:
    from devstack.cli import main

    common = ["--rest", stack.urls["rest"], "--api-key", client_a.key]
    assert main(["submit", *common, "--ws", stack.urls["ws"], "--type", "limit", "--limit-price", "1000",
                 "--amount", "1"]) == 0
    order_id = json.loads(capsys.readouterr().out.split("\n", 1)[1])["orderId"]
    wait_for(client_a, order_id, lambda o: o["status"] == "waiting")
    assert main(["cancel", *common, order_id]) == 0
    assert capsys.readouterr().out.strip() == f"{order_id} cancelled"
    assert main(["cancel", *common, order_id]) == 1
    assert "409 not_cancellable" in capsys.readouterr().err
    assert main(["submit", *common, "--type", "limit"]) == 2
    assert "--type limit needs --limit-price" in capsys.readouterr().err
