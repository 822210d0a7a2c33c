"""Sniper orders with fakes and a fake clock: arming before and after a launch, the opening as a
market event, the matcher triggering at open plus the delay, and the worker's checks and cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.domain import (
    Order,
    OrderStatus,
    OrderType,
    SniperChecks,
    get_token,
    iso,
    unlaunched,
)
from chalicelib.domain.clock import FakeClock
from chalicelib.execution.chain import ChainSettings, SimulatedChain
from chalicelib.execution.executor import Executor, OutcomeKind
from chalicelib.execution.triggers import (
    EARLY_SECONDS,
    LaunchEvent,
    LaunchWatch,
    Matcher,
    WaitingBooks,
    opening_delay,
    parse_event,
    resend_openings,
    sweep,
)
from chalicelib.routing.launches import Launch, LaunchTerms
from chalicelib.routing.market import MarketSettings, SimulatedMarket
from chalicelib.routing.router import Router

from .fakes import InMemoryBook, InMemoryOrderStore, InMemorySniperBook, RecordingQueue, RecordingSink

SOL = get_token("SOL")


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.sink = RecordingSink()
        self.book = InMemorySniperBook()
        self.market = SimulatedMarket(MarketSettings(seed=11, drift_bps=0), self.clock,
                                      on_launch=lambda launch: self.watch(launch))
        self.watch = LaunchWatch(self.book, self.sink, self.market.slot, self.clock)
        self.chain = SimulatedChain(self.market, self.clock, ChainSettings(seed=11, confirm_latency_ms=(400, 800)))
        self.store = InMemoryOrderStore()
        self.queue = RecordingQueue()
        self.router = Router(list(self.market.venues.values()), self.clock)
        self.executor = Executor(self.store, self.router, self.chain, self.clock, confirm_poll_seconds=0.1,
                                 book=InMemoryBook(), sniper_book=self.book, launches=self.market, events=self.sink)
        self.matcher = Matcher(self.store, InMemoryBook(), self.router, self.queue, self.clock, sniper_book=self.book,
                               launches=self.market, events=self.sink)

    def sniper(self, mint: str, max_price: str = "0.0001", amount: int = 500_000_000, delay_slots: int = 0,
               checks: SniperChecks | None = None, expires_in: timedelta | None = None) -> Order:
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        launch = self.market.launch_of(mint)
        order = Order.create(client_id="c", token_in=SOL, token_out=launch.token if launch else unlaunched(mint),
                             amount_in=amount, slippage_bps=500, order_type=OrderType.SNIPER, max_price=max_price,
                             checks=checks, delay_slots=delay_slots,
                             expires_at=None if expires_in is None else now + expires_in, now=now)
        self.store.create(order)
        return order

    def launch(self, nonce: bytes = b"pepe", open_in_slots: int = 10, liquidity_sol: int = 50,
               mint_renounced: bool = True, freeze_renounced: bool = True, lp_burned: bool = True,
               price: str = "0.00002") -> Launch:
        terms = LaunchTerms("PEPE2", 6, "raydium", liquidity_sol * 10**9, Decimal(price), open_in_slots,
                            mint_renounced, freeze_renounced, lp_burned)
        return self.market.launch(terms, nonce=nonce)

    def openings(self) -> list[tuple[LaunchEvent, int]]:
        """The openings published since the last look, as the matcher will read them, with their delay."""
        found = []
        for message, delay in self.sink.take():
            event = parse_event(message)
            assert isinstance(event, LaunchEvent)
            found.append((event, delay))
        return found

    def stored(self, order_id: str) -> Order:
        order = self.store.get(order_id)
        assert order is not None
        return order

    def run(self, order_id: str) -> Any:
        return self.executor.execute(order_id)


def statuses(order: Order) -> list[str]:
    return [e.status.value for e in order.history]


MINT = SimulatedMarket.mint_for(b"pepe")


def test_a_sniper_placed_before_the_launch_waits_and_its_launch_publishes_the_opening() -> None:
    w = World()
    order = w.sniper(MINT)
    assert w.run(order.order_id).reason == "waiting"
    waiting = w.stored(order.order_id)
    assert statuses(waiting) == ["pending", "waiting"]
    assert waiting.last_event.data == {"watchMint": MINT, "maxPrice": "0.0001", "expiresAt": waiting.expires_at,
                                       "checks": SniperChecks().to_data(), "delaySlots": 0}
    assert [e.order_id for e in w.book.entries(MINT)] == [order.order_id]
    assert w.sink.published == []  # nothing has launched: nothing to publish

    launch = w.launch(open_in_slots=10)  # the pool opens 4 s from now
    [(event, delay)] = w.openings()
    assert (event.mint, event.pool, event.venue) == (MINT, launch.pool_id, "raydium")
    assert event.due_ms == event.open_ms == w.market.genesis_ms() + launch.open_ms
    assert delay == opening_delay(event.due_ms, event.at_ms) == 4 - EARLY_SECONDS  # a second or two early

    w.clock.advance(delay)
    result = w.matcher.handle([event])  # it waits out the rest, then triggers at open
    assert result.triggered == [order.order_id] and w.queue.sent == [order.order_id]
    assert w.clock.now() * 1000 >= event.open_ms
    routing = w.stored(order.order_id)
    trigger = routing.last_event.data["trigger"]
    assert trigger["kind"] == "pool_created" and trigger["pool"] == launch.pool_id and trigger["venue"] == "raydium"
    assert trigger["slot"] >= trigger["openSlot"] == event.open_slot and trigger["cause"] == "launch"
    assert routing.token_out.symbol == "PEPE2" and routing.token_out.decimals == 6  # learnt at the trigger
    assert w.book.entries(MINT) == []

    outcome = w.run(order.order_id)
    assert outcome.kind is OutcomeKind.DONE
    done = w.stored(order.order_id)
    assert statuses(done) == ["pending", "waiting", "routing", "building", "submitted", "confirmed"]
    assert done.min_amount_out is not None and done.min_amount_out >= done.cap_out()
    assert done.amount_out is not None and done.amount_out >= done.cap_out()


def test_a_sniper_armed_after_the_launch_publishes_the_opening_itself() -> None:
    w = World()
    w.launch(open_in_slots=20)
    assert w.sink.published == []  # nobody watched the mint when it launched
    order = w.sniper(MINT)
    assert not order.token_out.is_known or order.token_out.symbol == "PEPE2"
    w.run(order.order_id)
    [(event, delay)] = w.openings()
    assert event.due_ms == event.open_ms and delay == 8 - EARLY_SECONDS
    w.clock.advance(delay)
    assert w.matcher.handle([event]).triggered == [order.order_id]


def test_a_sniper_armed_once_its_pool_is_open_triggers_at_once() -> None:
    w = World()
    order = w.sniper(MINT)  # accepted before the launch; the worker arms it only once the pool is open
    w.launch(open_in_slots=1)
    assert w.sink.published == []  # nobody watched the mint yet
    w.clock.advance(1)
    w.run(order.order_id)
    done = w.stored(order.order_id)
    assert statuses(done) == ["pending", "waiting", "routing", "building", "submitted", "confirmed"]
    assert done.history[2].data["trigger"]["cause"] == "armed"
    assert w.book.entries(MINT) == [] and w.sink.published == []


def test_with_delay_slots_an_order_triggers_only_once_its_delay_is_over() -> None:
    w = World()
    now_order = w.sniper(MINT)
    late_order = w.sniper(MINT, delay_slots=5)
    for order in (now_order, late_order):
        w.run(order.order_id)
    w.launch(open_in_slots=3)
    [(opening, _)] = w.openings()
    result = w.matcher.handle([opening])
    assert result.triggered == [now_order.order_id]
    assert w.stored(late_order.order_id).status is OrderStatus.WAITING
    # its own event, due when its delay is over: 5 slots of 400 ms after the open
    [(later, delay)] = w.openings()
    assert later.due_ms == opening.open_ms + 5 * 400 and delay == 2 - EARLY_SECONDS
    early_slot = w.market.slot()
    assert early_slot < opening.open_slot + 5
    assert w.matcher.handle([later]).triggered == [late_order.order_id]
    trigger = w.stored(late_order.order_id).last_event.data["trigger"]
    assert trigger["slot"] >= trigger["openSlot"] + 5 and trigger["delaySlots"] == 5


def test_an_opening_that_arrives_too_early_is_published_again_closer() -> None:
    w = World()
    order = w.sniper(MINT)
    w.run(order.order_id)
    w.launch(open_in_slots=2000)  # 800 s ahead: further than a message may be delayed
    [(event, delay)] = w.openings()
    assert delay == 240
    w.clock.advance(delay)
    assert w.matcher.handle([event]).triggered == []
    [(again, again_delay)] = w.openings()
    assert again.due_ms == event.due_ms and again_delay == 240
    assert w.stored(order.order_id).status is OrderStatus.WAITING


@pytest.mark.parametrize(("launch", "checks", "named", "words"), [
    ({"mint_renounced": False}, SniperChecks(), ["mintRenounced"], "mint authority is not renounced"),
    ({"freeze_renounced": False}, SniperChecks(), ["freezeRenounced"], "freeze authority is not renounced"),
    ({"lp_burned": False}, SniperChecks(), ["lpBurned"], "LP tokens are not burned"),
    ({"liquidity_sol": 12}, SniperChecks(min_liquidity=Decimal(50)), ["minLiquidity"],
     "pool holds 12 SOL, less than the 50 minimum"),
])
def test_a_failing_check_fails_the_order_naming_it(launch: dict[str, Any], checks: SniperChecks,
                                                    named: list[str], words: str) -> None:
    w = World()
    order = w.sniper(MINT, checks=checks)
    w.run(order.order_id)
    w.launch(open_in_slots=2, **launch)
    [(event, _)] = w.openings()
    w.matcher.handle([event])
    swaps = w.chain.executed_swaps()
    w.run(order.order_id)
    failed = w.stored(order.order_id)
    assert statuses(failed) == ["pending", "waiting", "routing", "failed"]
    assert failed.error is not None and failed.error["code"] == "checks_failed"
    assert failed.error["checks"] == named and failed.error["message"] == words
    assert w.chain.executed_swaps() == swaps


def test_a_check_switched_off_lets_the_order_buy() -> None:
    w = World()
    order = w.sniper(MINT, checks=SniperChecks(freeze_renounced=False))
    w.run(order.order_id)
    w.launch(open_in_slots=2, freeze_renounced=False)
    [(event, _)] = w.openings()
    w.matcher.handle([event])
    w.run(order.order_id)
    assert w.stored(order.order_id).status is OrderStatus.CONFIRMED


def test_a_cap_below_the_launch_price_fails_naming_the_cap_and_swaps_nothing() -> None:
    w = World()
    order = w.sniper(MINT, max_price="0.00001")  # the pool opens at 0.00002 SOL per token
    w.run(order.order_id)
    w.launch(open_in_slots=2)
    [(event, _)] = w.openings()
    w.matcher.handle([event])
    w.run(order.order_id)
    failed = w.stored(order.order_id)
    assert statuses(failed) == ["pending", "waiting", "routing", "failed"]
    assert failed.error is not None and failed.error["code"] == "price_cap_exceeded"
    assert "maxPrice of 0.00001" in failed.error["message"] and failed.error["maxPrice"] == "0.00001"
    assert Decimal(failed.error["price"]) > Decimal("0.00002")  # the launch price, its fee and impact
    assert w.chain.executed_swaps() == 0


def test_a_sniper_whose_swap_slipped_quotes_again_at_once_under_its_cap() -> None:
    w = World()
    order = w.sniper(MINT, max_price="0.001")
    w.run(order.order_id)
    launch = w.launch(open_in_slots=2)
    [(event, _)] = w.openings()
    w.matcher.handle([event])
    # another sniper's big buy lands between this order's quote and its landing
    venue = w.market.venues["raydium"]
    real_route = w.router.route

    def route_then_someone_buys(*args: Any, **kwargs: Any) -> Any:
        found = real_route(*args, **kwargs)
        w.router.route = real_route  # type: ignore[method-assign]
        venue.swap(venue.quote(SOL, launch.token, 5 * 10**9), 0)
        return found

    w.router.route = route_then_someone_buys  # type: ignore[method-assign]
    w.run(order.order_id)
    done = w.stored(order.order_id)
    assert statuses(done) == ["pending", "waiting", "routing", "building", "submitted", "pending", "routing",
                              "building", "submitted", "confirmed"]
    assert done.history[5].data["slipped"] is True and done.history[6].data["trigger"]["cause"] == "retry"
    assert done.amount_out is not None and done.amount_out >= done.cap_out()


def test_an_overdue_sniper_is_not_triggered_and_the_sweep_expires_it() -> None:
    w = World()
    order = w.sniper(MINT, expires_in=timedelta(minutes=5))
    w.run(order.order_id)
    w.clock.advance(600)
    w.launch(open_in_slots=1)
    [(event, _)] = w.openings()
    assert w.matcher.handle([event]).triggered == []
    assert w.stored(order.order_id).status is OrderStatus.WAITING
    result = sweep(w.store, WaitingBooks(InMemoryBook(), w.book), w.queue, w.clock,
                   order_types=(OrderType.SNIPER.value,))
    assert result.expired == [order.order_id]
    assert statuses(w.stored(order.order_id)) == ["pending", "waiting", "expired"]
    assert w.book.entries(MINT) == []


def test_an_opening_nobody_acted_on_is_published_again_by_the_sweep() -> None:
    w = World()
    order = w.sniper(MINT)
    w.run(order.order_id)
    w.launch(open_in_slots=1)
    w.sink.take()  # the opening's message is lost
    assert resend_openings(w.store.waiting("sniper"), w.market, w.sink, w.clock) == []  # not overdue yet
    w.clock.advance(15)
    assert resend_openings(w.store.waiting("sniper"), w.market, w.sink, w.clock) == [MINT]
    [(event, delay)] = w.openings()
    assert delay == 0 and w.matcher.handle([event]).triggered == [order.order_id]


def test_the_same_opening_twice_triggers_each_order_once() -> None:
    w = World()
    ids = [w.sniper(MINT, amount=100_000_000).order_id for _ in range(5)]
    for order_id in ids:
        w.run(order_id)
    w.launch(open_in_slots=2)
    [(event, _)] = w.openings()
    first = w.matcher.handle([event, event])
    second = w.matcher.handle([event])
    assert sorted(first.triggered) == sorted(ids) and second.triggered == []
    assert sorted(w.queue.sent) == sorted(ids)
    for order_id in ids:
        w.run(order_id)
        w.run(order_id)  # a redelivered message
    assert w.chain.executed_swaps() == 5
    assert all(w.stored(i).status is OrderStatus.CONFIRMED for i in ids)


def test_a_cancelled_snipers_entry_goes_and_its_opening_triggers_nothing() -> None:
    w = World()
    order = w.sniper(MINT)
    w.run(order.order_id)
    waiting = w.stored(order.order_id)
    version = waiting.version
    waiting.transition(OrderStatus.CANCELLED, {"by": "client"})
    w.store.save(waiting, version)
    w.launch(open_in_slots=1)
    [(event, _)] = w.openings()  # the stale entry still says someone watches
    result = w.matcher.handle([event])
    assert result.triggered == [] and result.discarded == 1 and w.book.entries(MINT) == []


def test_the_market_launches_tokens_of_its_own_once_per_period() -> None:
    w = World()
    w.clock.advance(120)
    first = w.market.auto_launch(60)
    assert first is not None and w.market.auto_launch(60) is None  # once per period, whoever asks
    other = SimulatedMarket(MarketSettings(seed=11, drift_bps=0), w.clock, state=w.market.state)
    assert other.auto_launch(60) is None and other.launch_of(first.token.mint) is not None
    w.clock.advance(60)
    second = w.market.auto_launch(60)
    assert second is not None and second.token.mint != first.token.mint
    assert w.market.auto_launch(0) is None  # 0: off
    assert iso(datetime.fromtimestamp(w.clock.now(), UTC))  # the clock is the market's


def test_the_markets_own_launches_are_delisted_once_thirty_newer_ones_exist() -> None:
    from chalicelib.routing.market import AUTO_LAUNCHES_KEPT

    w = World()
    other = SimulatedMarket(MarketSettings(seed=11, drift_bps=0), w.clock, state=w.market.state)
    made = []
    for _ in range(AUTO_LAUNCHES_KEPT + 1):
        w.clock.advance(60)
        launched = w.market.auto_launch(60)
        assert launched is not None
        made.append(launched)
        other.refresh_launches()  # another process follows
    oldest, second = made[0], made[1]
    assert w.market.launch_of(oldest.token.mint) is None and oldest.pool_id not in w.market.specs
    assert w.market.launch_of(second.token.mint) is not None
    assert oldest.token.mint not in other.launches and second.token.mint in other.launches
    assert len([spec for spec in w.market.specs.values() if spec.open_ms > 0]) == AUTO_LAUNCHES_KEPT
