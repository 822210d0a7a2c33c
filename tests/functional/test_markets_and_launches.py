"""GET /api/markets and POST /api/sim/launches: the simulated market as the contract shows it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from chalicelib.api.contract import LaunchResponse, MarketsResponse
from chalicelib.api.services import Services

from .conftest import API_KEY_A, invoke_worker, make_services, order_body, post_order, receive_records

HEADERS = {"x-api-key": API_KEY_A, "Content-Type": "application/json"}
LAUNCH = {"symbol": "PEPE2", "decimals": 6, "venue": "raydium", "liquidity": "50", "openInSlots": 0,
          "mintRenounced": True, "freezeRenounced": True, "lpBurned": False}


def launch(client: Any, **overrides: Any) -> Any:
    return client.http.post("/api/sim/launches", headers=HEADERS, body=json.dumps({**LAUNCH, **overrides}))


def test_markets_list_every_pair_with_both_venues_price_and_liquidity(client: Any) -> None:
    resp = client.http.get("/api/markets", headers={"x-api-key": API_KEY_A})
    assert resp.status_code == 200
    body = MarketsResponse.model_validate_json(resp.body)
    assert len(body.markets) == 15
    sol_usdc = next(m for m in body.markets if (m.base.symbol, m.quote.symbol) == ("SOL", "USDC"))
    assert [v.venue for v in sol_usdc.venues] == ["meteora", "raydium"]
    assert all(140 < float(v.price) < 160 and v.open and v.openSlot is None for v in sol_usdc.venues)
    assert sol_usdc.launch is None and float(sol_usdc.venues[1].liquidity.quote) > 1_000_000


def test_a_launch_is_201_with_its_mint_and_is_listed_with_its_authorities(client: Any) -> None:
    resp = launch(client, openInSlots=25)
    assert resp.status_code == 201
    launched = LaunchResponse.model_validate_json(resp.body)
    markets = MarketsResponse.model_validate_json(client.http.get("/api/markets", headers=HEADERS).body)
    market = next(m for m in markets.markets if m.base.mint == launched.mint)
    assert market.quote.symbol == "SOL" and market.launch is not None
    assert market.launch.lpBurned is False and market.launch.openSlot == launched.openSlot
    [venue] = market.venues
    assert venue.pool == launched.pool and venue.open is False and venue.openSlot == launched.openSlot
    assert venue.price == "0.00002" and market.launch.launchPrice == "0.00002"


def test_once_open_a_launched_token_is_quoted_and_traded_by_its_mint(client: Any, services: Services) -> None:
    mint = json.loads(launch(client).body)["mint"]
    quotes = client.http.get(f"/api/quotes?tokenIn=SOL&tokenOut={mint}&amount=0.5", headers=HEADERS)
    assert quotes.status_code == 200 and json.loads(quotes.body)["route"]["venue"] == "raydium"
    accepted = post_order(client, order_body(tokenOut=mint, amount="0.5", slippageBps=200))
    assert accepted.status_code == 202
    invoke_worker(client, receive_records(services))
    order = json.loads(client.http.get(f"/api/orders/{json.loads(accepted.body)['orderId']}", headers=HEADERS).body)
    assert order["status"] == "confirmed" and order["tokenOut"] == "PEPE2"
    assert 20_000 < float(order["amountOut"]) < 25_000  # 0.5 SOL at 0.00002 SOL per token, less fee and impact


def test_another_container_reads_an_order_on_a_launched_token(client: Any, services: Services, redis_client: Any,
                                                              redis_prefix: str) -> None:
    mint = json.loads(launch(client).body)["mint"]
    order_id = json.loads(post_order(client, order_body(tokenOut=mint, amount="0.5")).body)["orderId"]
    other = make_services(services.settings, redis_client, redis_prefix)
    stored = other.orders.get(order_id)
    assert stored is not None and stored.token_out.mint == mint and stored.token_out.decimals == 6


@pytest.mark.parametrize(("overrides", "field"), [
    ({"symbol": "pepe"}, "symbol"), ({"decimals": 12}, "decimals"), ({"venue": "orca"}, "venue"),
    ({"liquidity": "0"}, "liquidity"), ({"liquidity": 50}, "liquidity"), ({"openInSlots": -1}, "openInSlots"),
    ({"lpBurned": "yes"}, "lpBurned"), ({"price": "0"}, "price"), ({"surprise": 1}, "surprise"),
    ({"price": "0.000000000001", "liquidity": "900000"}, "price"),
])
def test_a_bad_launch_is_400_naming_the_field(client: Any, overrides: dict[str, Any], field: str) -> None:
    resp = launch(client, **overrides)
    assert resp.status_code == 400, resp.body
    assert json.loads(resp.body)["error"]["field"] == field


@pytest.mark.parametrize("stage", ["prod", "staging"])
def test_launches_are_served_on_local_and_dev_only(client: Any, services: Services, stage: str) -> None:
    services.settings = replace(services.settings, stage=stage)
    resp = launch(client)
    assert resp.status_code == 404 and json.loads(resp.body)["error"]["code"] == "not_found"
    services.settings = replace(services.settings, stage="dev")
    assert launch(client).status_code == 201


def test_markets_and_launches_need_a_key(client: Any) -> None:
    assert client.http.get("/api/markets").status_code == 401
    assert client.http.post("/api/sim/launches", headers={"Content-Type": "application/json"},
                            body=json.dumps(LAUNCH)).status_code == 401


def test_a_pool_launched_to_open_in_zero_slots_is_open_at_once(client: Any) -> None:
    mint = json.loads(launch(client, openInSlots=0).body)["mint"]
    markets = MarketsResponse.model_validate_json(client.http.get("/api/markets", headers=HEADERS).body)
    assert next(m for m in markets.markets if m.base.mint == mint).venues[0].open is True
