"""Sniper orders: they rest in ``waiting`` watching a mint, trigger once when its pool opens (plus
their delay) through the market events queue and the matcher, run their checks, buy under their
cap on the one shared market, and can be cancelled or expire. The worker, the matcher and the
sweep run as their Lambdas would, on the queues moto serves; the market is the shared one in
Redis, and pools open on its real clock (a few hundred milliseconds after they launch)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.api.services import Services
from chalicelib.domain import Order, OrderStatus, SniperChecks, get_token, iso
from chalicelib.routing.launches import Launch, LaunchTerms
from chalicelib.routing.market import SimulatedMarket
from chalicelib.routing.raydium import RaydiumPool

from .conftest import API_KEY_A, invoke_worker, order_body, post_order, receive_records
from .test_limit_orders import RULE, later, run_workers, statuses, stored, sweep

SOL = get_token("SOL")
HEADERS = {"x-api-key": API_KEY_A, "Content-Type": "application/json"}


# -- helpers -----------------------------------------------------------------------------------------
def new_mint() -> tuple[bytes, str]:
    """A launch's nonce and the mint it will create: known before the token exists."""
    nonce = os.urandom(16)
    return nonce, SimulatedMarket.mint_for(nonce)


def launch(services: Services, nonce: bytes, open_in_slots: int = 2, liquidity_sol: int = 50,
           price: str = "0.00002", **authorities: bool) -> Launch:
    """A token launched on the shared market, as the market's own launches are made."""
    terms = LaunchTerms("PEPE2", 6, "raydium", liquidity_sol * 10**9, Decimal(price), open_in_slots,
                        authorities.get("mint_renounced", True), authorities.get("freeze_renounced", True),
                        authorities.get("lp_burned", True))
    return services.market.launch(terms, nonce=nonce)


def submit_sniper(client: Any, mint: str, **extra: Any) -> str:
    body = order_body(type="sniper", tokenOut=mint, amount=extra.pop("amount", "0.5"),
                      maxPrice=extra.pop("maxPrice", "0.0001"), slippageBps=extra.pop("slippageBps", 500), **extra)
    resp = post_order(client, body)
    assert resp.status_code == 202, resp.body
    return str(json.loads(resp.body)["orderId"])


def openings(services: Services, wait: int = 0) -> list[dict[str, Any]]:
    """The market events queue, as the matcher's event source reads it (``wait``: a long poll)."""
    return receive_records(services, queue=services.settings.market_events_queue, wait=wait)


def run_matcher_until(client: Any, services: Services, done: Callable[[], bool], timeout: float = 30) -> int:
    """Hand every market event to the matcher Lambda until ``done``: openings are delayed to
    arrive shortly before their pool opens, so this long-polls for them."""
    deadline = time.monotonic() + timeout
    handled = 0
    while not done():
        assert time.monotonic() < deadline, "no market event made it happen"
        records = openings(services, wait=1)
        if records:
            assert invoke_worker(client, records, name="match_market_events") == {"batchItemFailures": []}
            handled += len(records)
    return handled


def status_is(services: Services, order_id: str, *wanted: OrderStatus) -> Callable[[], bool]:
    return lambda: stored(services, order_id).status in wanted


def trigger_of(order: Order) -> dict[str, Any]:
    return next(e.data["trigger"] for e in order.history if "trigger" in e.data)


# -- intake -----------------------------------------------------------------------------------------
def test_a_sniper_watches_a_mint_not_trading_yet_and_refuses_one_that_trades(client: Any,
                                                                              services: Services) -> None:
    _, mint = new_mint()
    assert submit_sniper(client, mint)  # not launched: it may launch later
    launched = json.loads(client.http.post("/api/sim/launches", headers=HEADERS, body=json.dumps(
        {"symbol": "SOON", "liquidity": "50", "openInSlots": 250})).body)["mint"]
    assert submit_sniper(client, launched)  # launched, its pool not open yet
    opened = json.loads(client.http.post("/api/sim/launches", headers=HEADERS, body=json.dumps(
        {"symbol": "OPEN", "liquidity": "50", "openInSlots": 0})).body)["mint"]
    for trading in (opened, get_token("USDC").mint, SOL.mint):
        resp = post_order(client, order_body(type="sniper", tokenOut=trading, amount="0.5", maxPrice="1"))
        assert resp.status_code == 400, resp.body
        error = json.loads(resp.body)["error"]
        assert error["field"] == "tokenOut" and "already trading" in error["message"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"tokenOut": "0OIl" * 10}, "tokenOut"), ({"tokenOut": "USDC"}, "tokenOut"), ({"maxPrice": "0"}, "maxPrice"),
    ({"maxPrice": "0.000"}, "maxPrice"), ({"maxPrice": 1}, "maxPrice"), ({"tokenIn": "USDC"}, "tokenIn"),
    ({"delaySlots": 151}, "delaySlots"), ({"delaySlots": "2"}, "delaySlots"), ({"delaySlots": 2.5}, "delaySlots"),
    ({"checks": {"minLiquidity": "-1"}}, "checks.minLiquidity"), ({"checks": {"lpBurned": "yes"}}, "checks.lpBurned"),
    ({"checks": {"honeypot": True}}, "checks.honeypot"), ({"limitPrice": "1"}, "limitPrice"),
])
def test_a_bad_sniper_order_is_400_naming_the_field(client: Any, overrides: dict[str, Any], field: str) -> None:
    _, mint = new_mint()
    body = order_body(**{"type": "sniper", "tokenOut": mint, "amount": "0.5", "maxPrice": "0.0001", **overrides})
    resp = post_order(client, body)
    assert resp.status_code == 400, resp.body
    assert json.loads(resp.body)["error"]["field"] == field


def test_a_whole_number_of_delay_slots_may_be_written_as_a_json_number_with_a_point(client: Any) -> None:
    _, mint = new_mint()
    resp = post_order(client, order_body(type="sniper", tokenOut=mint, amount="0.5", maxPrice="1", delaySlots=3.0))
    assert resp.status_code == 202, resp.body


# -- waiting, triggering at open, executing ----------------------------------------------------------
def test_a_sniper_placed_before_the_launch_triggers_at_open_and_confirms(client: Any, services: Services) -> None:
    # GIVEN a sniper order on a mint nobody has launched yet
    nonce, mint = new_mint()
    order_id = submit_sniper(client, mint, checks={"minLiquidity": "40"})
    assert run_workers(client, services) == 1
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting"]
    assert order.last_event.data["watchMint"] == mint and order.last_event.data["delaySlots"] == 0
    view = json.loads(client.http.get(f"/api/orders/{order_id}", headers=HEADERS).body)
    assert view["tokenOut"] == mint and view["watchMint"] == mint and view["maxPrice"] == "0.0001"
    assert view["checks"] == {"mintRenounced": True, "freezeRenounced": True, "lpBurned": True, "minLiquidity": "40"}
    assert openings(services) == []  # nothing launched: nothing published

    # WHEN the token launches, its pool opening a few slots later
    launched = launch(services, nonce, open_in_slots=3)
    open_slot = services.market.slot_at(launched.open_ms)
    assert stored(services, order_id).status is OrderStatus.WAITING
    # THEN its opening reaches the matcher, which triggers the order at the open, once
    run_matcher_until(client, services, status_is(services, order_id, OrderStatus.ROUTING))
    order = stored(services, order_id)
    trigger = trigger_of(order)
    assert trigger["kind"] == "pool_created" and trigger["pool"] == launched.pool_id and trigger["venue"] == "raydium"
    assert trigger["slot"] >= open_slot and trigger["openSlot"] == open_slot
    assert order.token_out.symbol == "PEPE2" and order.token_out.decimals == 6  # learnt at the trigger
    assert services.sniper_book.entries(mint) == []

    # AND the worker buys, the cap held on chain
    assert run_workers(client, services) == 1
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "routing", "building", "submitted", "confirmed"]
    assert order.min_amount_out is not None and order.min_amount_out >= order.cap_out()
    assert order.amount_out is not None and order.amount_out >= order.cap_out()
    view = json.loads(client.http.get(f"/api/orders/{order_id}", headers=HEADERS).body)
    assert view["tokenOut"] == "PEPE2" and view["watchMint"] == mint
    assert 20_000 < float(view["amountOut"]) < 25_000  # 0.5 SOL at 0.00002 SOL per token, less fee and impact
    assert services.state.active("client-a") == []


def test_a_launch_then_a_sniper_before_the_pool_opens_fills_at_the_open(client: Any, services: Services) -> None:
    launched = json.loads(client.http.post("/api/sim/launches", headers=HEADERS, body=json.dumps(
        {"symbol": "SNIPE", "liquidity": "50", "openInSlots": 4})).body)
    order_id = submit_sniper(client, launched["mint"])
    run_workers(client, services)  # armed after the launch: it publishes the opening itself
    run_matcher_until(client, services, status_is(services, order_id, OrderStatus.ROUTING))
    assert trigger_of(stored(services, order_id))["slot"] >= launched["openSlot"]
    run_workers(client, services)
    assert stored(services, order_id).status is OrderStatus.CONFIRMED


def test_with_delay_slots_a_sniper_does_not_trigger_before_its_delay(client: Any, services: Services) -> None:
    nonce, mint = new_mint()
    at_open = submit_sniper(client, mint)
    delayed = submit_sniper(client, mint, delaySlots=4)
    run_workers(client, services)
    launched = launch(services, nonce, open_in_slots=2)
    open_slot = services.market.slot_at(launched.open_ms)
    run_matcher_until(client, services, status_is(services, at_open, OrderStatus.ROUTING))
    assert stored(services, delayed).status is OrderStatus.WAITING  # the open came, its delay did not
    run_matcher_until(client, services, status_is(services, delayed, OrderStatus.ROUTING))
    assert trigger_of(stored(services, delayed))["slot"] >= open_slot + 4
    assert trigger_of(stored(services, at_open))["slot"] < open_slot + 4
    run_workers(client, services)
    assert {stored(services, i).status for i in (at_open, delayed)} == {OrderStatus.CONFIRMED}


@pytest.mark.parametrize(("authorities", "checks", "named", "message"), [
    ({"mint_renounced": False}, {}, ["mintRenounced"], "mint authority is not renounced"),
    ({"freeze_renounced": False}, {}, ["freezeRenounced"], "freeze authority is not renounced"),
    ({"lp_burned": False}, {}, ["lpBurned"], "LP tokens are not burned"),
    ({"liquidity_sol": 12}, {"minLiquidity": "50"}, ["minLiquidity"], "pool holds 12 SOL, less than the 50 minimum"),
])
def test_each_failing_check_fails_the_order_naming_it(client: Any, services: Services, authorities: dict[str, Any],
                                                      checks: dict[str, Any], named: list[str], message: str) -> None:
    nonce, mint = new_mint()
    order_id = submit_sniper(client, mint, checks=checks)
    run_workers(client, services)
    launch(services, nonce, open_in_slots=1, **authorities)
    run_matcher_until(client, services, status_is(services, order_id, OrderStatus.ROUTING))
    swaps = services.chain.executed_swaps()
    run_workers(client, services)
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "routing", "failed"]
    assert order.error is not None
    assert (order.error["code"], order.error["checks"], order.error["message"]) == ("checks_failed", named, message)
    assert order.error["retryable"] is False
    assert services.chain.executed_swaps() == swaps  # nothing bought


def test_a_cap_the_launch_price_exceeds_fails_naming_the_cap(client: Any, services: Services) -> None:
    nonce, mint = new_mint()
    order_id = submit_sniper(client, mint, maxPrice="0.00002")  # the launch price itself: fees put it above
    run_workers(client, services)
    launched = launch(services, nonce, open_in_slots=1)
    run_matcher_until(client, services, status_is(services, order_id, OrderStatus.ROUTING))
    pool_before = services.market.pool(launched.pool_id).reserves()
    run_workers(client, services)
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "routing", "failed"]
    assert order.error is not None and order.error["code"] == "price_cap_exceeded"
    assert "above the maxPrice of 0.00002" in order.error["message"]
    assert Decimal(order.error["price"]) > Decimal("0.00002")
    assert services.market.pool(launched.pool_id).reserves() == pool_before  # no swap


def test_twenty_snipers_on_one_launch_make_twenty_swaps_at_rising_prices_none_twice(
        client: Any, services: Services) -> None:
    nonce, mint = new_mint()
    ids = [submit_sniper(client, mint, amount="0.1", maxPrice="0.001", slippageBps=1000, clientOrderId=f"snipe-{i}")
           for i in range(20)]
    assert run_workers(client, services) == 20
    launched = launch(services, nonce, open_in_slots=2)
    swaps = services.chain.executed_swaps()
    run_matcher_until(client, services, lambda: all(stored(services, i).status is OrderStatus.ROUTING for i in ids))
    # SQS delivers at least once: every trigger message twice, and the opening again
    queued = receive_records(services)
    while more := receive_records(services):
        queued.extend(more)
    assert sorted(json.loads(r["body"])["orderId"] for r in queued) == sorted(ids)
    for batch in (queued[i:i + 10] for i in range(0, len(queued), 10)):
        assert invoke_worker(client, batch) == {"batchItemFailures": []}
        assert invoke_worker(client, batch) == {"batchItemFailures": []}
    run_workers(client, services)

    orders = [stored(services, i) for i in ids]
    assert all(o.status is OrderStatus.CONFIRMED for o in orders), [statuses(o) for o in orders]
    assert services.chain.executed_swaps() - swaps == 20  # one swap each, none twice
    assert len({o.tx_hash for o in orders}) == 20
    # Each swap moved the new pool: replayed from its opening state, cheapest first, every swap
    # gets exactly what it got, each at a higher price than the one before.
    pool = services.market.decode(launched.pool_id, None)
    assert isinstance(pool, RaydiumPool)
    paid = []
    for order in sorted(orders, key=lambda o: -(o.amount_out or 0)):
        result = pool.simulate(SOL, order.amount_in, 0.0)
        assert result.amount_out == order.amount_out, order.order_id
        assert order.amount_out >= order.cap_out()
        pool.commit(result, 0.0)
        paid.append(Decimal(order.amount_in) / Decimal(order.amount_out))
    assert paid == sorted(paid) and len(set(paid)) == 20


def test_a_sniper_on_a_mint_that_never_launches_expires(client: Any, services: Services,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _, mint = new_mint()
    expires = datetime.now(UTC) + timedelta(minutes=5)
    order_id = submit_sniper(client, mint, expiresAt=iso(expires))
    other = submit_sniper(client, mint)  # a day to go
    run_workers(client, services)
    monkeypatch.setattr(services, "clock", later(services, 600))
    sweep(client)
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "expired"]
    assert order.last_event.data == {"expiresAt": iso(expires)}
    assert [e.order_id for e in services.sniper_book.entries(mint)] == [other]
    assert services.state.active("client-a") == [other]


def test_cancel_ends_a_waiting_sniper_and_its_launch_triggers_nothing(client: Any, services: Services) -> None:
    nonce, mint = new_mint()
    order_id = submit_sniper(client, mint)
    services.matcher.ensure_book()  # as the sweep keeps it: known to be complete
    run_workers(client, services)
    resp = client.http.delete(f"/api/orders/{order_id}", headers=HEADERS)
    assert resp.status_code == 200 and json.loads(resp.body)["status"] == "cancelled"
    assert services.sniper_book.entries(mint) == []
    launch(services, nonce, open_in_slots=1)
    assert openings(services) == []  # nobody watches the mint any more
    assert statuses(stored(services, order_id)) == ["pending", "waiting", "cancelled"]


def test_the_sniper_book_is_rebuilt_from_the_table_after_redis_lost_it(client: Any, services: Services,
                                                                         redis_client: Any) -> None:
    nonce, mint = new_mint()
    order_id = submit_sniper(client, mint, delaySlots=1)
    run_workers(client, services)
    keys = list(redis_client.scan_iter(match=f"{services.settings.redis_prefix}:book:*"))
    assert keys
    redis_client.delete(*keys)
    assert services.sniper_book.entries(mint) == [] and not services.sniper_book.ready()
    launch(services, nonce, open_in_slots=1)  # the book cannot say nobody watches: published
    run_matcher_until(client, services, status_is(services, order_id, OrderStatus.ROUTING))
    assert services.sniper_book.ready()
    assert trigger_of(stored(services, order_id))["delaySlots"] == 1  # from the index, with its delay


def test_every_key_a_waiting_sniper_writes_expires(client: Any, services: Services, redis_client: Any,
                                                   redis_prefix: str) -> None:
    _, mint = new_mint()
    submit_sniper(client, mint)
    run_workers(client, services)
    services.matcher.ensure_book()
    keys = list(redis_client.scan_iter(match=f"{redis_prefix}:book:sniper:*"))
    assert len(keys) == 2  # the mint's book and the marker
    assert all(redis_client.ttl(k) > 0 for k in keys), {k: redis_client.ttl(k) for k in keys}


def test_the_market_tick_launches_tokens_at_the_rate_it_is_given(client: Any, services: Services,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from devstack.schedule_poller import scheduled_event

    before = set(services.market.launches)
    client.lambda_.invoke("market_tick", scheduled_event(RULE, "us-east-1"))
    assert set(services.market.launches) == before  # 0 by default: off
    monkeypatch.setattr(services, "settings", replace(services.settings, launch_every_seconds=3600))
    client.lambda_.invoke("market_tick", scheduled_event(RULE, "us-east-1"))
    client.lambda_.invoke("market_tick", scheduled_event(RULE, "us-east-1"))
    [new] = set(services.market.launches) - before  # one per period
    markets = json.loads(client.http.get("/api/markets", headers=HEADERS).body)["markets"]
    assert any(m["base"]["mint"] == new and m["launch"] is not None for m in markets)


def test_the_checks_default_to_on(client: Any, services: Services) -> None:
    _, mint = new_mint()
    order_id = submit_sniper(client, mint)
    assert stored(services, order_id).checks == SniperChecks()


def test_an_index_made_before_it_projected_the_mint_still_yields_each_snipers_token(client: Any,
                                                                                   services: Services) -> None:
    _, mint = new_mint()
    order_id = submit_sniper(client, mint, delaySlots=3)
    run_workers(client, services)
    [row] = [w for w in services.orders.waiting("sniper") if w.order_id == order_id]
    assert (row.token_out.mint, row.delay_slots) == (mint, 3)
    # a row as an index provisioned before this projection holds it: no mint, no decimals, no delay
    old = {"orderId": order_id, "type": "sniper", "tokenOut": mint, "status": "waiting"}
    [merged] = services.orders._with_tokens([old])
    assert (merged["tokenOutMint"], int(merged["tokenOutDecimals"]), int(merged["delaySlots"])) == (mint, -1, 3)
