"""Limit orders: they rest in ``waiting`` on the one shared market, trigger once when a market
event moves the price through their level, execute with the limit held on chain, and can be
cancelled or expire. The worker, the matcher and the sweep run as their Lambdas would, on the
queues moto serves; the market is the shared one in Redis."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.adapters.orders_table import TRIGGER_GRACE
from chalicelib.api.services import Services
from chalicelib.domain import Order, OrderStatus, Token, get_token, iso, price, to_decimal_string
from chalicelib.domain.clock import FakeClock
from chalicelib.execution.triggers import Matcher
from devstack.schedule_poller import scheduled_event

from .conftest import API_KEY_A, API_KEY_B, invoke_worker, order_body, post_order, receive_records

SOL, USDC = get_token("SOL"), get_token("USDC")
RULE = "arn:aws:events:us-east-1:123456789012:rule/order-engine-test"


# -- helpers: the market, the queues, the Lambdas --------------------------------------------------
def best_price(services: Services, token_in: Token = SOL, token_out: Token = USDC,
               amount: int = 1_000_000_000) -> Decimal:
    """What a full-size trade of ``amount`` gets now, at the best venue (tokenOut per tokenIn). Asked
    again until both venues answer: one that missed the quote timeout on a busy machine would make
    the other look like the best, and a level set just above that may be below the real best."""
    for _ in range(20):
        quotes, _ = services.router.quotes(token_in, token_out, amount)
        if len(quotes) == 2:
            return price(amount, token_in, quotes[0].amount_out, token_out)
    raise AssertionError("a venue never quoted")


def push_sol_price_up(services: Services, usdc: int = 200_000) -> None:
    """Another trader buys SOL with ``usdc`` USDC on every venue: SOL's price rises everywhere."""
    for venue in services.market.venues.values():
        quote = venue.quote(USDC, SOL, usdc * 10**6)
        venue.swap(quote, 0)


def submit_limit(client: Any, limit_price: Decimal | str, key: str = API_KEY_A, **extra: Any) -> str:
    body = order_body(type="limit", limitPrice=_text(limit_price), amount=extra.pop("amount", "1"), **extra)
    resp = post_order(client, body, key=key)
    assert resp.status_code == 202, resp.body
    return str(json.loads(resp.body)["orderId"])


def _text(value: Decimal | str) -> str:
    return value if isinstance(value, str) else format(value.quantize(Decimal("0.000001")), "f")


def run_workers(client: Any, services: Services) -> int:
    """Everything on the orders queue, as the worker's event source mapping would; how many."""
    handled = 0
    while records := receive_records(services):
        assert invoke_worker(client, records) == {"batchItemFailures": []}
        handled += len(records)
    return handled


def market_events(services: Services) -> list[dict[str, Any]]:
    return receive_records(services, queue=services.settings.market_events_queue)


def run_matcher(client: Any, services: Services) -> int:
    """Every market event waiting, to the matcher Lambda; how many there were."""
    handled = 0
    while records := market_events(services):
        assert invoke_worker(client, records, name="match_market_events") == {"batchItemFailures": []}
        handled += len(records)
    return handled


def stored(services: Services, order_id: str) -> Order:
    order = services.orders.get(order_id)
    assert order is not None
    return order


def statuses(order: Order) -> list[str]:
    return [e.status.value for e in order.history]


def book_entries(services: Services, token_in: Token = SOL, token_out: Token = USDC) -> list[str]:
    return [e.order_id for e in services.book.candidates(token_in, token_out, Decimal("1e30"))]


def sweep(client: Any) -> None:
    """The expiry sweep, as EventBridge's schedule invokes it."""
    client.lambda_.invoke("expiry_sweep", scheduled_event(RULE, "us-east-1"))


def later(services: Services, seconds: float) -> FakeClock:
    return FakeClock(services.clock.now() + seconds)


# -- waiting, triggering, executing ----------------------------------------------------------------
def test_a_limit_order_above_the_price_waits_then_a_swap_through_its_level_triggers_it(
        client: Any, services: Services) -> None:
    # GIVEN a limit order 0.5 % above what 1 SOL fetches now
    now = best_price(services)
    limit = now * Decimal("1.005")
    order_id = submit_limit(client, limit)
    # WHEN the worker arms it
    assert run_workers(client, services) == 1
    # THEN it waits, at its level, in the book
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting"]
    waiting = order.last_event.data
    assert waiting["limitPrice"] == order.limit_price == _text(limit).rstrip("0")
    assert waiting["expiresAt"] == order.expires_at
    assert Decimal(waiting["bestPrice"]) < limit
    assert book_entries(services) == [order_id]
    assert market_events(services) == []  # quoting moved nothing

    # WHEN another trader's swap moves the price through the level
    push_sol_price_up(services)
    assert best_price(services) > limit
    # THEN a market event reaches the matcher, which triggers the order: waiting → routing, once
    assert run_matcher(client, services) >= 1
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "routing"]
    routing = order.last_event.data
    trigger = routing["trigger"]
    assert trigger["kind"] == "price" and trigger["cause"] == "swap"
    assert Decimal(trigger["price"]) >= limit and trigger["slot"] > 0
    assert {q["venue"] for q in routing["quotes"]} == {"raydium", "meteora"}
    assert book_entries(services) == []

    # AND the worker executes it from routing, with the limit held on chain
    assert run_workers(client, services) == 1
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "routing", "building", "submitted", "confirmed"]
    required = order.required_out()
    assert order.min_amount_out is not None and order.min_amount_out >= required
    assert order.amount_out is not None and order.amount_out >= required
    assert Decimal(order.executed_price or "0") >= Decimal(order.limit_price or "0")
    assert services.chain.executed_swaps() == 1
    assert services.state.active("client-a") == []


def test_a_limit_order_below_the_price_triggers_at_once(client: Any, services: Services) -> None:
    limit = best_price(services) * Decimal("0.99")
    order_id = submit_limit(client, limit)
    assert run_workers(client, services) == 1
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "routing", "building", "submitted", "confirmed"]
    waiting, routing = order.history[1].data, order.history[2].data
    assert Decimal(waiting["bestPrice"]) >= limit
    assert routing["trigger"]["cause"] == "armed" and Decimal(routing["trigger"]["price"]) >= limit
    assert order.amount_out is not None and order.amount_out >= order.required_out()
    assert book_entries(services) == []


def test_fifty_orders_at_one_level_trigger_once_each_and_none_executes_twice(
        client: Any, services: Services) -> None:
    level = best_price(services, amount=10_000_000) * Decimal("1.004")
    ids = [submit_limit(client, level, amount="0.01", clientOrderId=f"fifty-{i}") for i in range(50)]
    assert run_workers(client, services) == 50
    assert sorted(book_entries(services)) == sorted(ids)

    push_sol_price_up(services)  # one price move
    events = market_events(services)
    assert events
    # the same events twice (SQS delivers at least once): one trigger each all the same
    for _ in range(2):
        assert invoke_worker(client, events, name="match_market_events") == {"batchItemFailures": []}
    run_matcher(client, services)
    assert run_workers(client, services) == 50

    for order_id in ids:
        order = stored(services, order_id)
        assert statuses(order) == ["pending", "waiting", "routing", "building", "submitted", "confirmed"], order_id
        assert order.amount_out is not None and order.amount_out >= order.required_out()
    assert services.chain.executed_swaps() == 50
    assert book_entries(services) == []


def test_a_triggered_order_whose_price_slipped_away_waits_again(client: Any, services: Services) -> None:
    limit = best_price(services) * Decimal("1.005")
    order_id = submit_limit(client, limit)
    run_workers(client, services)
    push_sol_price_up(services)
    run_matcher(client, services)
    assert stored(services, order_id).status is OrderStatus.ROUTING
    # the price falls back below the level before the worker gets to it
    for venue in services.market.venues.values():
        venue.swap(venue.quote(SOL, USDC, 3_000 * 10**9), 0)
    run_workers(client, services)
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "routing", "waiting"]
    assert order.last_event.data["slipped"] is True
    assert Decimal(order.last_event.data["bestPrice"]) < limit
    assert book_entries(services) == [order_id]  # at its new version: the matcher can trigger it again
    push_sol_price_up(services, usdc=600_000)
    run_matcher(client, services)
    run_workers(client, services)
    assert stored(services, order_id).status is OrderStatus.CONFIRMED
    assert services.chain.executed_swaps() == 1


# -- cancel ----------------------------------------------------------------------------------------
def cancel(client: Any, order_id: str, key: str = API_KEY_A) -> Any:
    return client.http.delete(f"/api/orders/{order_id}", headers={"x-api-key": key})


def test_cancel_ends_a_waiting_order_and_only_its_client_may(client: Any, services: Services) -> None:
    order_id = submit_limit(client, best_price(services) * 2)
    run_workers(client, services)
    assert cancel(client, order_id, key=API_KEY_B).status_code == 404  # another client's order does not exist
    resp = cancel(client, order_id)
    assert resp.status_code == 200, resp.body
    body = json.loads(resp.body)
    assert body["status"] == "cancelled" and body["orderId"] == order_id
    assert body["history"][-1]["data"] == {"by": "client"}
    assert statuses(stored(services, order_id)) == ["pending", "waiting", "cancelled"]
    assert book_entries(services) == []
    assert services.state.active("client-a") == []
    again = cancel(client, order_id)
    assert again.status_code == 409
    assert json.loads(again.body)["error"]["code"] == "not_cancellable"
    assert cancel(client, "ord_00000000000000000000000000").status_code == 404


def test_a_pending_order_cancelled_before_the_worker_arms_it_never_waits(client: Any, services: Services) -> None:
    order_id = submit_limit(client, best_price(services) * 2)
    assert cancel(client, order_id).status_code == 200
    run_workers(client, services)
    assert statuses(stored(services, order_id)) == ["pending", "cancelled"]
    assert book_entries(services) == []


def test_an_executed_order_is_not_cancellable(client: Any, services: Services) -> None:
    resp = post_order(client)
    order_id = json.loads(resp.body)["orderId"]
    run_workers(client, services)
    refused = cancel(client, order_id)
    assert refused.status_code == 409
    assert json.loads(refused.body)["error"] == {
        "code": "not_cancellable", "field": "orderId",
        "message": f"order {order_id} is confirmed; only pending or waiting orders can be cancelled"}


def test_cancel_racing_the_trigger_has_exactly_one_outcome_each_of_fifty_times(
        client: Any, services: Services, atomic_dynamodb: None) -> None:
    level = best_price(services, amount=10_000_000) * Decimal("1.004")
    ids = [submit_limit(client, level, amount="0.01", clientOrderId=f"race-{i}") for i in range(50)]
    services.matcher.ensure_book()  # as the sweep keeps it: events name only the pairs where orders wait
    run_workers(client, services)
    push_sol_price_up(services)
    events = market_events(services)
    assert events

    start = threading.Barrier(51)
    answers: dict[str, int] = {}
    # The cancels spread over about as long as the matcher takes, so that some land before its
    # writes, some among them and some after: whichever comes first must be the only outcome.
    delays = {order_id: random.Random(i).uniform(0, 0.4) for i, order_id in enumerate(ids)}

    def cancel_one(order_id: str) -> None:
        start.wait()
        time.sleep(delays[order_id])
        answers[order_id] = cancel(client, order_id).status_code

    def match() -> None:
        start.wait()
        invoke_worker(client, events, name="match_market_events")

    threads = [threading.Thread(target=cancel_one, args=(i,)) for i in ids] + [threading.Thread(target=match)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    queued: list[str] = []
    while records := receive_records(services):
        queued.extend(json.loads(r["body"])["orderId"] for r in records)
    outcomes = {}
    for order_id in ids:
        history = statuses(stored(services, order_id))
        assert history in (["pending", "waiting", "cancelled"], ["pending", "waiting", "routing"]), history
        outcomes[order_id] = history[-1]
        # the cancel's answer says which one won
        assert answers[order_id] == (200 if history[-1] == "cancelled" else 409)
    triggered = {i for i, o in outcomes.items() if o == "routing"}
    assert sorted(queued) == sorted(triggered)  # each trigger sent once; no cancelled order sent
    assert book_entries(services) == []


def test_cancel_over_the_websocket(client: Any, services: Services) -> None:
    from .test_websocket import connect, say

    notifier = services.notifier
    cid = connect(notifier)  # type: ignore[arg-type]
    order_id = submit_limit(client, best_price(services) * 2)
    run_workers(client, services)
    say(cid, {"action": "cancel", "orderId": order_id})
    assert stored(services, order_id).status is OrderStatus.CANCELLED
    # the action is answered; the status itself reaches subscribers through the stream
    assert notifier.sent[cid] == [{"type": "order.cancelled", "orderId": order_id, "seq": 3}]
    notifier.sent[cid].clear()
    say(cid, {"action": "cancel", "orderId": order_id})
    say(cid, {"action": "cancel", "orderId": "ord_00000000000000000000000000"})
    say(cid, {"action": "cancel"})
    errors = [(m["code"], m.get("status"), m.get("field")) for m in notifier.sent[cid]]
    assert errors == [("not_cancellable", 409, "orderId"), ("not_found", 404, "orderId"),
                      ("validation_error", None, "orderId")]


# -- expiry ----------------------------------------------------------------------------------------
def test_an_overdue_order_is_never_triggered_and_the_sweep_expires_it(
        client: Any, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    limit = best_price(services) * Decimal("1.005")
    order_id = submit_limit(client, limit, expiresAt=iso(expires))
    other = submit_limit(client, limit * 2)  # a day to go
    run_workers(client, services)
    assert stored(services, order_id).expires_at == iso(expires)

    # ten minutes on: the price crosses its level, but it is overdue
    push_sol_price_up(services)
    matcher = Matcher(services.orders, services.book, services.router, services.queue, later(services, 600))
    result = matcher.handle([])  # nothing to match
    assert result.triggered == []
    from chalicelib.execution.triggers import MarketEvent

    event = MarketEvent("swap", ((SOL.mint, USDC.mint),), 1, 0)
    assert matcher.handle([event]).triggered == []
    assert stored(services, order_id).status is OrderStatus.WAITING

    # the sweep, ten minutes on, ends it expired; the other one waits on
    monkeypatch.setattr(services, "clock", later(services, 600))
    sweep(client)
    order = stored(services, order_id)
    assert statuses(order) == ["pending", "waiting", "expired"]
    assert order.last_event.data == {"expiresAt": iso(expires)}
    assert book_entries(services) == [other]
    assert services.state.active("client-a") == [other]
    assert stored(services, other).status is OrderStatus.WAITING
    assert cancel(client, order_id).status_code == 409


# -- the book, and what the market publishes ---------------------------------------------------------
def test_the_book_is_rebuilt_from_the_table_after_its_redis_keys_are_deleted(
        client: Any, services: Services, redis_client: Any) -> None:
    limit = best_price(services) * Decimal("1.005")
    crossing = submit_limit(client, limit)
    far = submit_limit(client, limit * 2)
    reverse = submit_limit(client, "1", tokenIn="USDC", tokenOut="SOL", amount="10")  # 1 SOL per USDC: waits
    run_workers(client, services)
    assert sorted(book_entries(services)) == sorted([crossing, far])
    # Redis loses the book
    keys = list(redis_client.scan_iter(match=f"{services.settings.redis_prefix}:book:*"))
    assert keys
    redis_client.delete(*keys)
    assert book_entries(services) == [] and not services.book.ready()

    push_sol_price_up(services)  # with the book gone, the change is published all the same
    assert run_matcher(client, services) >= 1
    assert stored(services, crossing).status is OrderStatus.ROUTING
    assert book_entries(services) == [far]
    assert book_entries(services, USDC, SOL) == [reverse]
    assert services.book.ready()


def test_market_orders_publish_nothing_while_nobody_waits(client: Any, services: Services) -> None:
    services.matcher.ensure_book()  # the book is known to be empty
    post_order(client)
    run_workers(client, services)
    push_sol_price_up(services)
    assert market_events(services) == []
    assert services.market_watch.published == 0


def test_the_market_tick_publishes_where_orders_wait(client: Any, services: Services) -> None:
    services.matcher.ensure_book()
    submit_limit(client, best_price(services) * 2)
    run_workers(client, services)
    services.clock.sleep(1.1)  # the next tick of the random walk is due
    client.lambda_.invoke("market_tick", scheduled_event(RULE, "us-east-1"))
    [event] = market_events(services)
    body = json.loads(event["body"])
    assert body["kind"] == "tick" and body["pairs"] == [[SOL.mint, USDC.mint]]  # of the 30 that moved


def test_a_trigger_whose_message_was_lost_is_sent_again_by_the_sweep(
        client: Any, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = best_price(services) * Decimal("1.005")
    order_id = submit_limit(client, limit)
    run_workers(client, services)
    push_sol_price_up(services)
    # the matcher writes the trigger, then dies before its message reaches the orders queue
    monkeypatch.setattr(services.queue, "send_orders", lambda ids: (_ for _ in ()).throw(RuntimeError("crash")))
    with pytest.raises(RuntimeError):
        services.matcher.handle([_event()])
    monkeypatch.undo()
    assert stored(services, order_id).status is OrderStatus.ROUTING
    assert receive_records(services) == []
    # within the grace, nothing; after it, the sweep sends it, and it executes
    sweep(client)
    assert receive_records(services) == []
    monkeypatch.setattr(services, "clock", later(services, TRIGGER_GRACE.total_seconds() + 1))
    sweep(client)
    monkeypatch.undo()
    assert run_workers(client, services) == 1
    order = stored(services, order_id)
    assert order.status is OrderStatus.CONFIRMED
    assert statuses(order).count("routing") == 1


def _event() -> Any:
    from chalicelib.execution.triggers import MarketEvent

    return MarketEvent("swap", ((SOL.mint, USDC.mint),), 1, 0)


def test_amounts_in_the_waiting_data_are_decimal_strings(client: Any, services: Services) -> None:
    order_id = submit_limit(client, "1000", amount="1.5")
    run_workers(client, services)
    resp = client.http.get(f"/api/orders/{order_id}", headers={"x-api-key": API_KEY_A})
    view = json.loads(resp.body)
    assert view["type"] == "limit" and view["limitPrice"] == "1000" and view["expiresAt"]
    assert view["status"] == "waiting"
    assert to_decimal_string(stored(services, order_id).required_out(), USDC) == "1500"


def test_a_change_is_published_once_after_it_committed_even_when_its_transaction_ran_again(
        client: Any, services: Services, redis_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.adapters.redis_sim_state import RedisSimState
    from chalicelib.execution.triggers import MarketWatch
    from chalicelib.routing.market import MarketSettings, SimulatedMarket

    services.matcher.ensure_book()
    submit_limit(client, best_price(services) * 2)
    run_workers(client, services)
    prefix = services.settings.redis_prefix
    # The shared market as another container sees it, without its random walk (no tick is due
    # while the test runs), its changes watched as Services wires them.
    state = RedisSimState(redis_client, prefix=prefix)
    published: list[tuple[dict[str, Any], bytes]] = []
    watches: list[MarketWatch] = []
    market = SimulatedMarket(MarketSettings(seed=services.settings.market_seed, drift_bps=0), services.clock,
                             state=state, on_change=lambda changes: watches[0](changes))
    venue = market.venues["raydium"]
    pool = f"{prefix}:sim:pool:{venue.spec_for(USDC, SOL).pool_id}"

    class Sink:
        def publish(self, event: Any) -> None:
            published.append((dict(event), redis_client.get(pool)))

    watches.append(MarketWatch(services.book, Sink(), market.pair_of, services.clock))
    real_transaction = state.transaction
    runs: list[int] = []

    def first_attempt_conflicts(body: Any) -> Any:
        def attempt(txn: Any) -> Any:
            result = body(txn)
            runs.append(1)
            if len(runs) == 1:  # another process writes the clock after this attempt watched it
                redis_client.set(f"{prefix}:sim:clock", redis_client.get(f"{prefix}:sim:clock"))
            return result
        return real_transaction(attempt)

    quote = venue.quote(USDC, SOL, 10_000 * 10**6)
    monkeypatch.setattr(state, "transaction", first_attempt_conflicts)
    venue.swap(quote, 0)
    assert len(runs) == 2  # the swap's transaction ran again after the conflict
    [(event, pool_then)] = published  # published once, not once per attempt
    assert event["kind"] == "swap" and [SOL.mint, USDC.mint] in event["pairs"]
    assert pool_then == redis_client.get(pool)  # and only once the swap was in Redis


def test_every_key_a_waiting_order_writes_expires(client: Any, services: Services, redis_client: Any,
                                                  redis_prefix: str) -> None:
    submit_limit(client, best_price(services) * 2)
    run_workers(client, services)
    services.matcher.ensure_book()
    keys = list(redis_client.scan_iter(match=f"{redis_prefix}:book:*"))
    assert len(keys) == 3  # the book of SOL→USDC and its marker, and the sniper book's marker
    assert all(redis_client.ttl(k) > 0 for k in keys), {k: redis_client.ttl(k) for k in keys}
