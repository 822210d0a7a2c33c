"""Orders that wait for the market: what a change of the market publishes, and the matcher.

* ``MarketWatch`` listens to the market (``SimulatedMarket(on_change=…)``): the pools a landed
  swap or a price tick changed become one market event, published only when a trigger book of an
  affected pair holds orders (or needs rebuilding). A market order on a pair where nobody waits
  costs one Redis round trip and no AWS call.
* ``Matcher`` handles a batch of market events: for each affected pair it reads every venue's
  pool once, asks the book for the orders whose limit is at most the best marginal price now
  (an index range: the orders on other levels are never looked at), confirms each with a
  full-size quote against those pools (``amountOut ≥ ceil(amount · limitPrice)``, exact), moves
  each confirmed order ``waiting → routing`` with one conditional write (``data.trigger``), sends
  the triggered orders to the orders queue, then takes them out of the book.

Exactly one trigger per order, whoever else sees the same price: the write is conditional on the
order's ``waiting`` version (and on its expiry being ahead), so a second matcher, a cancel or the
expiry sweep that races it finds the order moved. A trigger whose message to the worker was lost
(a crash between the write and the send) stays in the orders table's ``waiting`` index until a
worker picks it up; the expiry sweep sends it again (``resend_stuck``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..domain import (
    DomainError,
    OrderEvent,
    OrderStatus,
    OrderType,
    PoolChange,
    Quote,
    Token,
    get_token,
    iso,
    parse_iso,
    price_string,
)
from ..domain.clock import Clock
from ..routing.router import Router
from ..routing.venue import VenueSnapshot
from .ports import BookEntry, MarketEventSink, OrderQueue, TriggerBook, WaitingOrder, WaitingOrders

__all__ = ["MarketEvent", "MarketWatch", "MatchResult", "Matcher", "SweepResult", "sweep"]

log = logging.getLogger("order_engine.matcher")

Pair = tuple[Token, Token]


def _iso_ms(epoch_ms: int) -> str:
    return iso(datetime.fromtimestamp(epoch_ms / 1000, UTC))


@dataclass(frozen=True)
class MarketEvent:
    """Pools changed: ``pairs`` are the (mintIn, mintOut) directions with waiting orders."""

    kind: str  # swap | tick (launch: issue 14)
    pairs: tuple[tuple[str, str], ...]
    slot: int
    at_ms: int  # when it was published, epoch ms

    def to_message(self) -> dict[str, Any]:
        return {"kind": self.kind, "pairs": [list(p) for p in self.pairs], "slot": self.slot, "at": self.at_ms}

    @classmethod
    def from_message(cls, raw: Mapping[str, Any]) -> MarketEvent:
        return cls(str(raw["kind"]), tuple((str(a), str(b)) for a, b in raw.get("pairs") or ()), int(raw["slot"]),
                   int(raw["at"]))


class MarketWatch:
    """The market's ``on_change`` listener: publishes a market event when orders wait on a pair
    the change touched. It runs after the market's change has been committed, once (never inside
    the optimistic transaction's retries); a failure here never undoes the change."""

    def __init__(self, book: TriggerBook, sink: MarketEventSink, pair_of: Callable[[str], Pair],
                 clock: Clock) -> None:
        self._book = book
        self._sink = sink
        self._pair_of = pair_of
        self._clock = clock
        self.published = 0

    def __call__(self, changes: Sequence[PoolChange]) -> None:
        directions: dict[tuple[str, str], Pair] = {}
        for change in changes:
            x, y = self._pair_of(change.pool_id)
            directions.setdefault((x.mint, y.mint), (x, y))
            directions.setdefault((y.mint, x.mint), (y, x))
        watched = self._book.watched(list(directions.values()))
        if not watched:
            return
        causes = {change.cause for change in changes}
        event = MarketEvent(
            kind="swap" if "swap" in causes else "tick",
            pairs=tuple((a.mint, b.mint) for a, b in watched),
            slot=max(change.slot for change in changes),
            at_ms=round(self._clock.now() * 1000),
        )
        self._sink.publish(event.to_message())
        self.published += 1


@dataclass
class MatchResult:
    rebuilt: int | None = None  # entries the book was rebuilt with, when it was
    pairs: int = 0
    candidates: int = 0
    triggered: list[str] = field(default_factory=list)
    discarded: int = 0  # stale entries taken out of the book


@dataclass(frozen=True)
class _Trigger:
    entry: BookEntry
    token_in: Token
    token_out: Token
    quotes: list[Quote]
    event: MarketEvent


class Matcher:
    def __init__(self, orders: WaitingOrders, book: TriggerBook, router: Router, queue: OrderQueue,
                 clock: Clock, *, max_workers: int = 10) -> None:
        self._orders = orders
        self._book = book
        self._router = router
        self._queue = queue
        self._clock = clock
        self._max_workers = max_workers

    def ensure_book(self) -> int | None:
        """Rebuild the book from the orders table when its marker is gone; how many entries then."""
        if self._book.ready():
            return None
        count = self._book.rebuild(self._orders.waiting(OrderType.LIMIT.value))
        log.info(json.dumps({"msg": "trigger book rebuilt", "entries": count}))
        return count

    def handle(self, events: Sequence[MarketEvent]) -> MatchResult:
        result = MatchResult(rebuilt=self.ensure_book())
        latest: dict[tuple[str, str], MarketEvent] = {}
        for event in sorted(events, key=lambda e: (e.slot, e.at_ms)):
            for pair in event.pairs:
                latest[pair] = event
        by_pool: dict[frozenset[str], list[tuple[str, str]]] = {}
        for direction in latest:
            by_pool.setdefault(frozenset(direction), []).append(direction)
        found: list[_Trigger] = []
        for directions in by_pool.values():
            try:
                a, b = (get_token(m) for m in directions[0])
            except DomainError:
                log.warning(json.dumps({"msg": "market event for an unknown pair", "pair": directions[0]}))
                continue
            result.pairs += 1
            snapshots = self._router.snapshots(a, b)
            for mint_in, mint_out in directions:
                token_in, token_out = (a, b) if mint_in == a.mint else (b, a)
                found.extend(self._confirmed(snapshots, token_in, token_out, latest[(mint_in, mint_out)], result))
        if found:
            self._trigger(found, result)
        return result

    def _confirmed(self, snapshots: Sequence[VenueSnapshot], token_in: Token, token_out: Token,
                   event: MarketEvent, result: MatchResult) -> list[_Trigger]:
        best = self._router.marginal_price(snapshots, token_in, token_out)
        if best is None:
            return []
        now_ms = round(self._clock.now() * 1000)
        confirmed = []
        for entry in self._book.candidates(token_in, token_out, best):
            result.candidates += 1
            if entry.expires_ms <= now_ms:
                continue  # overdue: never triggered; the expiry sweep ends it
            quotes, _rejected = self._router.quotes_from(snapshots, token_in, token_out, entry.amount_in)
            if quotes and quotes[0].amount_out >= entry.required_out:
                confirmed.append(_Trigger(entry, token_in, token_out, quotes, event))
        return confirmed

    def _trigger(self, found: Sequence[_Trigger], result: MatchResult) -> None:
        workers = min(self._max_workers, len(found))
        if workers <= 1:
            outcomes = [self._write(t) for t in found]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="trigger") as pool:
                outcomes = list(pool.map(self._write, found))
        triggered = [t for t, (moved, _stale) in zip(found, outcomes, strict=True) if moved]
        stale = [t for t, (_moved, is_stale) in zip(found, outcomes, strict=True) if is_stale]
        if triggered:
            # Sent before the entries leave the book: a crash in between leaves a stale entry (its
            # next write is refused and it goes then), never a triggered order nobody executes.
            self._queue.send_orders([t.entry.order_id for t in triggered])
            result.triggered.extend(t.entry.order_id for t in triggered)
        gone: dict[tuple[str, str], list[_Trigger]] = {}
        for t in [*triggered, *stale]:
            gone.setdefault((t.token_in.mint, t.token_out.mint), []).append(t)
        for items in gone.values():
            self._book.discard(items[0].token_in, items[0].token_out, [t.entry for t in items])
        result.discarded += len(stale)

    def _write(self, t: _Trigger) -> tuple[bool, bool]:
        """(triggered, stale): one conditional write ``waiting → routing``."""
        entry, best = t.entry, t.quotes[0]
        at = iso(datetime.fromtimestamp(self._clock.now(), UTC))
        quotes = [q.to_data() for q in t.quotes]
        event = OrderEvent(entry.order_id, entry.version + 1, OrderStatus.ROUTING, at, {
            "trigger": {
                "kind": "price",
                "price": price_string(entry.amount_in, t.token_in, best.amount_out, t.token_out),
                "limitPrice": format(entry.limit_price, "f"),
                "slot": t.event.slot,
                "cause": t.event.kind,
                "eventAt": _iso_ms(t.event.at_ms),
            },
            "quotes": quotes,
        })
        refused = self._orders.transition_unread(entry.order_id, entry.version, OrderStatus.WAITING, event,
                                                 fields={"quotes": quotes}, expires_after=at)
        if refused is None:
            log.info(json.dumps({"msg": "limit order triggered", "orderId": entry.order_id,
                                 "price": event.data["trigger"]["price"], "limitPrice": str(entry.limit_price),
                                 "slot": t.event.slot}))
            return True, False
        # Not triggered. Stale if the order is gone or has moved past the version the book knows;
        # an order not yet written as waiting (its arming is under way) or overdue (the sweep's) stays.
        stale = refused.status is None or refused.version > entry.version or (
            refused.version == entry.version and refused.status is not OrderStatus.WAITING)
        return False, stale


@dataclass
class SweepResult:
    expired: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)


def sweep(orders: WaitingOrders, book: TriggerBook, queue: OrderQueue, clock: Clock,
          on_expired: Callable[[WaitingOrder], None] | None = None,
          order_types: Sequence[str] = (OrderType.LIMIT.value,)) -> SweepResult:
    """The expiry sweep: every order in the ``waiting`` index whose time has come. A waiting order
    past its ``expiresAt`` ends ``expired`` (one conditional write, so a trigger or a cancel that
    races it wins or loses whole); a triggered order no worker has picked up within the grace is
    sent to the orders queue again."""
    now = datetime.fromtimestamp(clock.now(), UTC)
    at = iso(now)
    result = SweepResult()
    for order_type in order_types:
        for item in list(orders.waiting(order_type, due_by=at)):
            if item.status is OrderStatus.ROUTING:
                result.resent.append(item.order_id)
                continue
            if item.status is not OrderStatus.WAITING or parse_iso(item.expires_at) > now:
                continue
            event = OrderEvent(item.order_id, item.version + 1, OrderStatus.EXPIRED, at,
                               {"expiresAt": item.expires_at})
            if orders.transition_unread(item.order_id, item.version, OrderStatus.WAITING, event,
                                        expires_before=at) is not None:
                continue  # triggered or cancelled meanwhile: that one won
            result.expired.append(item.order_id)
            book.forget(item)
            if on_expired is not None:
                on_expired(item)
    if result.resent:
        log.warning(json.dumps({"msg": "triggered orders not picked up; sent again", "orderIds": result.resent}))
        queue.send_orders(result.resent)
    return result
