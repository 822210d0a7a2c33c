"""Sniper orders on the whole local stack: a token launched over REST, a sniper placed before its
pool opens, triggered at the open through the market events queue and the matcher, confirmed and
watched over the socket; the client's `launch` and `submit --type sniper`; and a sniper on a mint
that never launches, expired on the sweep's schedule."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.routing.market import SimulatedMarket

from .conftest import Client, receive_until
from .test_limit_orders import ENDED, wait_for


def launch(client: Client, **terms: Any) -> dict[str, Any]:
    resp = client.http.post("/api/sim/launches", json={"symbol": "SNIPE", "liquidity": "50", "openInSlots": 10,
                                                       **terms})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_a_launch_is_sniped_at_its_open_and_the_socket_sees_every_step(client_a: Client) -> None:
    launched = launch(client_a, openInSlots=10)
    markets = client_a.http.get("/api/markets").json()["markets"]
    [pool] = next(m for m in markets if m["base"]["mint"] == launched["mint"])["venues"]
    assert pool["open"] is False
    resp = client_a.post(type="sniper", tokenOut=launched["mint"], amount="0.5", maxPrice="0.0001", slippageBps=500,
                         checks={"minLiquidity": "20"})
    assert resp.status_code == 202, resp.text
    order_id = resp.json()["orderId"]
    with client_a.socket(orderId=order_id) as ws:
        messages = receive_until(ws, lambda m: m.get("status") in ENDED and m.get("type") == "order.status",
                                 timeout=60)
    seen = [m["status"] for m in messages if m["type"] == "order.status"]
    assert seen[-4:] == ["routing", "building", "submitted", "confirmed"], messages
    order = client_a.order(order_id)
    assert [e["status"] for e in order["history"]] == ["pending", "waiting", "routing", "building", "submitted",
                                                        "confirmed"]
    waiting, routing = order["history"][1]["data"], order["history"][2]["data"]
    assert waiting["watchMint"] == launched["mint"] and waiting["maxPrice"] == "0.0001"
    trigger = routing["trigger"]
    assert trigger["kind"] == "pool_created" and trigger["pool"] == launched["pool"]
    assert trigger["venue"] == launched["venue"] and trigger["slot"] >= launched["openSlot"]
    assert order["tokenOut"] == "SNIPE" and order["watchMint"] == launched["mint"]
    assert float(order["amountOut"]) >= 0.5 / 0.0001  # the cap, held on chain


def test_the_client_launches_a_token_and_snipes_it(stack: Any, client_a: Client, capsys: Any) -> None:
    from devstack.cli import main

    common = ["--rest", stack.urls["rest"], "--api-key", client_a.key]
    assert main(["launch", *common, "--symbol", "CLI", "--open-in-slots", "8"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    mint = first.split("mint ", 1)[1].split(",", 1)[0]
    assert main(["submit", *common, "--ws", stack.urls["ws"], "--type", "sniper", "--to", mint, "--amount", "0.2",
                 "--max-price", "0.0001", "--slippage-bps", "500", "--watch"]) == 0
    out = capsys.readouterr().out
    assert f"watching {mint}" in out and "opened on raydium" in out and "confirmed" in out


def test_a_sniper_on_a_mint_that_never_launches_expires(client_a: Client) -> None:
    mint = SimulatedMarket.mint_for(os.urandom(16))
    expires = datetime.now(UTC) + timedelta(seconds=2)
    resp = client_a.post(type="sniper", tokenOut=mint, amount="0.5", maxPrice="1",
                         expiresAt=expires.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    assert resp.status_code == 202, resp.text
    order = wait_for(client_a, resp.json()["orderId"], lambda o: o["status"] in ENDED)
    assert [e["status"] for e in order["history"]] == ["pending", "waiting", "expired"]
    assert order["tokenOut"] == mint  # it never launched: named by its mint
    assert json.dumps(order["history"][-1]["data"]) == json.dumps({"expiresAt": order["expiresAt"]})
