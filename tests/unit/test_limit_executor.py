"""The executor's side of limit orders, with fakes: arming, triggering at once, continuing a
trigger, resting again when the price slipped away, and what a crash or a redelivery leaves."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain import Order, OrderStatus, OrderType, SlippageExceededError, Transaction, get_token, price
from chalicelib.domain.clock import FakeClock
from chalicelib.execution.chain import ChainSettings, SimulatedChain
from chalicelib.execution.executor import Executor, OutcomeKind
from chalicelib.execution.ports import StaleOrderError
from chalicelib.routing.market import MarketSettings, SimulatedMarket
from chalicelib.routing.router import Router

from .fakes import InMemoryBook, InMemoryOrderStore

SOL, USDC = get_token("SOL"), get_token("USDC")


class World:
    def __init__(self, on_change: Any = None) -> None:
        self.clock = FakeClock()
        self.market = SimulatedMarket(MarketSettings(seed=11, drift_bps=0), self.clock, on_change=on_change)
        self.chain = SimulatedChain(self.market, self.clock, ChainSettings(seed=11, confirm_latency_ms=(400, 800)))
        self.store = InMemoryOrderStore()
        self.book = InMemoryBook()
        self.router = Router(list(self.market.venues.values()), self.clock)
        self.executor = Executor(self.store, self.router, self.chain, self.clock, confirm_poll_seconds=0.1,
                                 book=self.book)

    def best(self, amount: int = 1_000_000_000) -> Decimal:
        quotes, _ = self.router.quotes(SOL, USDC, amount)
        return price(amount, SOL, quotes[0].amount_out, USDC)

    def limit(self, limit_price: Decimal, amount: int = 1_000_000_000) -> Order:
        from datetime import UTC, datetime

        order = Order.create(client_id="c", token_in=SOL, token_out=USDC, amount_in=amount, slippage_bps=50,
                             order_type=OrderType.LIMIT, limit_price=format(limit_price.quantize(Decimal("0.000001")),
                                                                            "f"),
                             now=datetime.fromtimestamp(self.clock.now(), UTC))
        self.store.create(order)
        return order

    def stored(self, order_id: str) -> Order:
        order = self.store.get(order_id)
        assert order is not None
        return order

    def trigger(self, order_id: str) -> None:
        """What the matcher's write does: waiting → routing with data.trigger."""
        order = self.stored(order_id)
        expected = order.version
        order.transition(OrderStatus.ROUTING, {"trigger": {"kind": "price", "price": "1", "slot": 1}, "quotes": []})
        self.store.save(order, expected)

    def move_sol_price(self, usdc: int) -> None:
        """Another trader buys SOL with ``usdc`` on every venue (sells SOL when negative)."""
        for venue in self.market.venues.values():
            if usdc > 0:
                venue.swap(venue.quote(USDC, SOL, usdc * 10**6), 0)
            else:
                venue.swap(venue.quote(SOL, USDC, -usdc * 10**9 // 150), 0)


def statuses(order: Order) -> list[str]:
    return [e.status.value for e in order.history]


def test_a_limit_order_above_the_price_is_armed_and_waits_in_the_book() -> None:
    w = World()
    order = w.limit(w.best() * Decimal("1.01"))
    outcome = w.executor.execute(order.order_id)
    assert (outcome.kind, outcome.reason) == (OutcomeKind.DONE, "waiting")
    stored = w.stored(order.order_id)
    assert statuses(stored) == ["pending", "waiting"]
    assert stored.last_event.data["limitPrice"] == stored.limit_price
    assert stored.last_event.data["expiresAt"] == stored.expires_at
    assert w.book.versions(order.order_id) == [2]  # in the book at the version it waits at
    assert w.chain.executed_swaps() == 0


def test_a_limit_order_at_or_below_the_price_triggers_at_once_and_holds_its_limit_on_chain() -> None:
    w = World()
    order = w.limit(w.best() * Decimal("0.999"))
    assert w.executor.execute(order.order_id).kind is OutcomeKind.DONE
    stored = w.stored(order.order_id)
    assert statuses(stored) == ["pending", "waiting", "routing", "building", "submitted", "confirmed"]
    assert stored.history[2].data["trigger"]["cause"] == "armed"
    required = stored.required_out()
    assert stored.min_amount_out is not None and stored.min_amount_out >= required
    assert stored.amount_out is not None and stored.amount_out >= required
    assert w.book.versions(order.order_id) == []


def test_a_triggered_order_continues_from_routing_instead_of_restarting() -> None:
    w = World()
    order = w.limit(w.best() * Decimal("1.002"))
    w.executor.execute(order.order_id)
    w.move_sol_price(800_000)  # through the level
    w.trigger(order.order_id)
    assert w.executor.execute(order.order_id).kind is OutcomeKind.DONE
    stored = w.stored(order.order_id)
    assert statuses(stored) == ["pending", "waiting", "routing", "building", "submitted", "confirmed"]
    assert stored.amount_out is not None and stored.amount_out >= stored.required_out()


def test_a_triggered_order_whose_price_slipped_away_rests_again_at_a_new_version() -> None:
    w = World()
    order = w.limit(w.best() * Decimal("1.002"))
    w.executor.execute(order.order_id)
    w.trigger(order.order_id)  # as if the price had crossed, and fallen back since
    outcome = w.executor.execute(order.order_id)
    assert (outcome.kind, outcome.reason) == (OutcomeKind.DONE, "waiting")
    stored = w.stored(order.order_id)
    assert statuses(stored) == ["pending", "waiting", "routing", "waiting"]
    assert stored.last_event.data["slipped"] is True
    assert 4 in w.book.versions(order.order_id)
    assert w.chain.executed_swaps() == 0


def test_a_swap_refused_for_slippage_never_lands_so_the_order_waits_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    order = w.limit(w.best() * Decimal("0.999"))
    real_send = w.chain.send_transaction
    sent: list[str] = []

    def price_moved(tx: Transaction) -> str:
        if not sent:
            sent.append(tx.signature)
            w.move_sol_price(-3_000_000)  # another trader sells first: the limit no longer holds
        return real_send(tx)

    monkeypatch.setattr(w.chain, "send_transaction", price_moved)
    outcome = w.executor.execute(order.order_id)
    stored = w.stored(order.order_id)
    assert statuses(stored) == ["pending", "waiting", "routing", "building", "submitted", "pending", "waiting"]
    pending = stored.history[5].data
    assert pending["slipped"] is True and pending["expiredSignature"] == sent[0]
    assert pending["error"]["code"] == SlippageExceededError.code
    assert stored.signature is None and outcome.kind is OutcomeKind.DONE
    assert w.book.versions(order.order_id) == [7]
    assert w.chain.executed_swaps() == 0


def test_a_limit_order_a_crashed_worker_left_in_routing_is_armed_afresh() -> None:
    w = World()
    order = w.limit(w.best() * Decimal("1.01"))
    stored = w.stored(order.order_id)
    stored.transition(OrderStatus.ROUTING, {"quotes": []})  # no trigger: a worker died here
    w.store.save(stored, 1)
    w.executor.execute(order.order_id, receive_count=2)
    assert statuses(w.stored(order.order_id)) == ["pending", "routing", "pending", "waiting"]
    assert w.book.versions(order.order_id) == [4]


def test_a_waiting_order_delivered_again_stays_as_it_is() -> None:
    w = World()
    order = w.limit(w.best() * Decimal("1.01"))
    w.executor.execute(order.order_id)
    w.book.entries.clear()  # as if the entry had been lost
    outcome = w.executor.execute(order.order_id, receive_count=2)
    assert (outcome.kind, outcome.reason) == (OutcomeKind.DONE, "waiting")
    assert statuses(w.stored(order.order_id)) == ["pending", "waiting"]
    assert w.book.versions(order.order_id) == [2]  # put back


def test_an_order_cancelled_while_it_was_being_armed_leaves_no_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    order = w.limit(w.best() * Decimal("1.01"))
    real_save = w.store.save

    def cancelled_first(o: Order, expected: int) -> None:
        raise StaleOrderError("cancelled meanwhile")

    monkeypatch.setattr(w.store, "save", cancelled_first)
    assert w.executor.execute(order.order_id).reason == "stale"
    monkeypatch.setattr(w.store, "save", real_save)
    assert w.book.versions(order.order_id) == []


def test_the_dead_letter_path_leaves_a_waiting_order_waiting() -> None:
    w = World()
    order = w.limit(w.best() * Decimal("1.01"))
    w.executor.execute(order.order_id)
    assert w.executor.fail_stuck(order.order_id, "retries_exhausted", "x").reason == "waiting"
    assert w.stored(order.order_id).status is OrderStatus.WAITING


def test_quotes_failing_while_arming_retry_without_a_write(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.domain import QuoteTimeoutError

    w = World()
    order = w.limit(w.best() * Decimal("1.01"))

    def timeout(*args: Any, **kwargs: Any) -> Any:
        raise QuoteTimeoutError("venue did not answer in time")

    for venue in w.market.venues.values():
        monkeypatch.setattr(venue, "quote", timeout)
    outcome = w.executor.execute(order.order_id, receive_count=1)
    assert outcome.kind is OutcomeKind.RETRY and outcome.delay_seconds == 2
    assert statuses(w.stored(order.order_id)) == ["pending"]
    last = w.executor.execute(order.order_id, receive_count=3)
    assert last.kind is OutcomeKind.DONE
    assert statuses(w.stored(order.order_id)) == ["pending", "failed"]


# -- the matcher and the market watch, with the same fakes ---------------------------------------------
class Sent:
    def __init__(self) -> None:
        self.orders: list[str] = []
        self.events: list[dict[str, Any]] = []

    def send_orders(self, order_ids: Any) -> None:
        self.orders.extend(order_ids)

    def publish(self, event: Any) -> None:
        self.events.append(dict(event))


def matcher_world() -> tuple[World, Sent, Any]:
    from chalicelib.execution.triggers import Matcher

    w = World()
    sent = Sent()
    return w, sent, Matcher(w.store, w.book, w.router, sent, w.clock)


def swap_event(w: World) -> Any:
    from chalicelib.execution.triggers import MarketEvent

    return MarketEvent("swap", ((SOL.mint, USDC.mint),), w.chain.get_block_height(), int(w.clock.now() * 1000))


def test_the_matcher_quotes_only_the_orders_at_or_below_the_price_and_triggers_each_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    w, sent, matcher = matcher_world()
    near = [w.limit(w.best() * Decimal("1.002")) for _ in range(3)]
    far = [w.limit(w.best() * Decimal(2 + i)) for i in range(20)]
    for order in [*near, *far]:
        w.executor.execute(order.order_id)
    quoted: list[int] = []
    real = w.router.quotes_from
    monkeypatch.setattr(w.router, "quotes_from", lambda s, a, b, amount: (quoted.append(amount), real(s, a, b,
                                                                                                        amount))[1])
    w.move_sol_price(800_000)
    result = matcher.handle([swap_event(w)])
    assert sorted(result.triggered) == sorted(o.order_id for o in near)
    assert len(quoted) == 3  # the twenty on other levels were never looked at
    assert sorted(sent.orders) == sorted(o.order_id for o in near)
    for order in near:
        stored = w.stored(order.order_id)
        assert statuses(stored) == ["pending", "waiting", "routing"]
        assert stored.trigger is not None and Decimal(stored.trigger["price"]) >= Decimal(stored.limit_price or 0)
        assert w.book.versions(order.order_id) == []
    assert matcher.handle([swap_event(w)]).triggered == []  # the same event again: nothing more
    assert all(len(w.book.versions(o.order_id)) == 1 for o in far)


def test_an_overdue_order_is_not_triggered() -> None:
    w, sent, matcher = matcher_world()
    order = w.limit(w.best() * Decimal("1.002"))
    w.executor.execute(order.order_id)
    w.move_sol_price(800_000)
    w.clock.advance(2 * 86_400)  # past its expiresAt (a day)
    assert matcher.handle([swap_event(w)]).triggered == []
    assert w.stored(order.order_id).status is OrderStatus.WAITING and sent.orders == []


def test_the_watch_publishes_only_where_orders_wait() -> None:
    from chalicelib.execution.triggers import MarketWatch

    sent = Sent()
    watches: list[MarketWatch] = []
    w = World(on_change=lambda changes: watches[0](changes))  # what Services wires
    watches.append(MarketWatch(w.book, sent, w.market.pair_of, w.clock))
    jup, ray = get_token("JUP"), get_token("RAY")
    for venue in w.market.venues.values():
        venue.swap(venue.quote(jup, ray, 10**6), 0)
    assert sent.events == []  # nobody waits on JUP/RAY
    order = w.limit(w.best() * Decimal("1.5"))
    w.executor.execute(order.order_id)
    w.move_sol_price(1_000)
    [event, *_] = sent.events
    assert event["kind"] == "swap" and event["pairs"] == [[SOL.mint, USDC.mint]]
