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

Sniper orders wait for a pool to open, not for a price:

* A launch (``SimulatedMarket(on_launch=…)``, seen by ``LaunchWatch``) publishes its pool's
  opening as a market event when orders watch its mint (or the sniper book needs rebuilding),
  delayed with SQS's ``DelaySeconds`` to arrive shortly before the pool opens
  (``opening_delay``). A sniper armed after the launch publishes the opening itself.
* The matcher, receiving an opening, waits out the rest (bounded; one that arrives too early
  is published again, closer), then moves every order on that mint whose ``delaySlots`` are
  over ``waiting → routing`` with one conditional write each (``data.trigger``: ``kind``
  "pool_created", the pool, the venue, the slot), filling in the token's symbol and decimals,
  and sends them to the orders queue. Orders with a longer delay get an event of their own,
  due when the shortest remaining delay is over.

Exactly one trigger per order, whoever else sees the same price: the write is conditional on the
order's ``waiting`` version (and on its expiry being ahead), so a second matcher, a cancel or the
expiry sweep that races it finds the order moved. A trigger whose message to the worker was lost
(a crash between the write and the send) stays in the orders table's ``waiting`` index until a
worker picks it up; the expiry sweep sends it again (``resend_stuck``), and publishes again an
opening that no matcher acted on (``resend_openings``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ..domain import (
    DomainError,
    OrderEvent,
    OrderStatus,
    OrderType,
    PoolChange,
    PoolLaunch,
    Quote,
    Token,
    get_token,
    iso,
    parse_iso,
    price_string,
)
from ..domain.clock import Clock
from ..logs import keep_log_keys
from ..logs import logger as log
from ..routing.router import Router
from ..routing.venue import VenueSnapshot
from .ports import (
    BookEntry,
    Launches,
    MarketEventSink,
    OrderQueue,
    SniperBook,
    SniperEntry,
    TriggerBook,
    WaitingOrder,
    WaitingOrders,
)

__all__ = [
    "EARLY_SECONDS",
    "MAX_EVENT_DELAY_SECONDS",
    "MAX_OPENING_WAIT_SECONDS",
    "LaunchEvent",
    "LaunchWatch",
    "MarketEvent",
    "MarketWatch",
    "MatchResult",
    "Matcher",
    "SweepResult",
    "WaitingBooks",
    "opening_delay",
    "parse_event",
    "pool_created",
    "publish_opening",
    "resend_openings",
    "sweep",
]

# An opening is published to arrive this long before the pool opens (whole seconds of SQS's
# DelaySeconds, rounded down, and then one more): a receiver that polls at most once a second
# still has it before the open, and the matcher waits out the rest.
EARLY_SECONDS = 1
# The longest DelaySeconds an opening asks for: SQS allows 900 s, but the market events queue keeps a
# message 300 s (MessageRetentionPeriod), counted from when it was sent. A later opening is
# published again by the matcher that receives it too early.
MAX_EVENT_DELAY_SECONDS = 240
# The longest a matcher waits for a pool to open; an event further ahead is published again.
MAX_OPENING_WAIT_SECONDS = 3.0
# An opening whose orders still wait this long after they were due was lost: the sweep sends it again.
OPENING_GRACE_SECONDS = 10


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


@dataclass(frozen=True)
class LaunchEvent:
    """A launched pool opens (``kind`` "launch"): the sniper orders watching ``mint`` whose delay is
    over by ``due_ms`` may buy then."""

    mint: str
    pool: str
    venue: str
    open_slot: int
    open_ms: int  # epoch ms: the pool opens
    due_ms: int  # epoch ms: act then (the open, or the open plus the shortest delay still waiting)
    slot: int  # when it was published
    at_ms: int  # when it was published, epoch ms
    kind: str = "launch"

    def to_message(self) -> dict[str, Any]:
        return {"kind": self.kind, "mint": self.mint, "pool": self.pool, "venue": self.venue,
                "openSlot": self.open_slot, "openAt": self.open_ms, "dueAt": self.due_ms, "slot": self.slot,
                "at": self.at_ms}

    @classmethod
    def from_message(cls, raw: Mapping[str, Any]) -> LaunchEvent:
        return cls(str(raw["mint"]), str(raw["pool"]), str(raw["venue"]), int(raw["openSlot"]), int(raw["openAt"]),
                   int(raw["dueAt"]), int(raw["slot"]), int(raw["at"]))


def parse_event(raw: Mapping[str, Any]) -> MarketEvent | LaunchEvent:
    """A market event's message, whichever kind (raises ``KeyError``/``ValueError``/``TypeError``)."""
    if raw.get("kind") == "launch":
        return LaunchEvent.from_message(raw)
    return MarketEvent.from_message(raw)


def opening_delay(due_ms: int, now_ms: int) -> int:
    """DelaySeconds for an event due at ``due_ms``: whole seconds, ``EARLY_SECONDS`` ahead, at most
    ``MAX_EVENT_DELAY_SECONDS``."""
    return max(0, min(MAX_EVENT_DELAY_SECONDS, math.floor((due_ms - now_ms) / 1000) - EARLY_SECONDS))


def publish_opening(sink: MarketEventSink, launch: PoolLaunch, due_ms: int, slot: int, clock: Clock) -> LaunchEvent:
    """Publish ``launch``'s opening, due at ``due_ms`` (epoch ms), delayed to arrive just before."""
    now_ms = round(clock.now() * 1000)
    event = LaunchEvent(launch.token.mint, launch.pool_id, launch.venue, launch.open_slot, launch.open_at_ms,
                        due_ms, slot, now_ms)
    sink.publish(event.to_message(), delay_seconds=opening_delay(due_ms, now_ms))
    return event


def pool_created(launch: PoolLaunch, slot: int, delay_slots: int, cause: str, event_at_ms: int | None = None,
                 ) -> dict[str, Any]:
    """A sniper's ``data.trigger`` (API.md): kind ``pool_created``, the pool, the venue, the slot."""
    trigger: dict[str, Any] = {
        "kind": "pool_created", "pool": launch.pool_id, "venue": launch.venue, "slot": slot,
        "mint": launch.token.mint, "openSlot": launch.open_slot, "delaySlots": delay_slots,
        "openAt": _iso_ms(launch.open_at_ms), "cause": cause,
    }
    if event_at_ms is not None:
        trigger["eventAt"] = _iso_ms(event_at_ms)
    return trigger


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


class LaunchWatch:
    """The market's ``on_launch`` listener: publishes the new pool's opening when orders watch its
    mint (or the sniper book needs rebuilding). A sniper armed later publishes it itself."""

    def __init__(self, book: SniperBook, sink: MarketEventSink, slot: Callable[[], int], clock: Clock) -> None:
        self._book = book
        self._sink = sink
        self._slot = slot
        self._clock = clock
        self.published = 0

    def __call__(self, launch: PoolLaunch) -> None:
        if not self._book.watched(launch.token.mint):
            return
        publish_opening(self._sink, launch, launch.open_at_ms, self._slot(), self._clock)
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
                 clock: Clock, *, max_workers: int = 10, sniper_book: SniperBook | None = None,
                 launches: Launches | None = None, events: MarketEventSink | None = None) -> None:
        self._orders = orders
        self._book = book
        self._router = router
        self._queue = queue
        self._clock = clock
        self._max_workers = max_workers
        self._sniper_book = sniper_book
        self._launches = launches
        self._events = events

    def ensure_book(self) -> int | None:
        """Rebuild each book from the orders table when its marker is gone; how many entries then."""
        count: int | None = None
        if not self._book.ready():
            count = self._book.rebuild(self._orders.waiting(OrderType.LIMIT.value))
            log.info("trigger book rebuilt", extra={"entries": count})
        if self._sniper_book is not None and not self._sniper_book.ready():
            snipers = self._sniper_book.rebuild(self._orders.waiting(OrderType.SNIPER.value))
            log.info("sniper book rebuilt", extra={"entries": snipers})
            count = (count or 0) + snipers
        return count

    def handle(self, events: Sequence[MarketEvent | LaunchEvent]) -> MatchResult:
        result = MatchResult(rebuilt=self.ensure_book())
        prices = [e for e in events if isinstance(e, MarketEvent)]
        openings = sorted((e for e in events if isinstance(e, LaunchEvent)), key=lambda e: e.due_ms)
        if prices:
            self._match_prices(prices, result)
        seen: set[tuple[str, int]] = set()
        for opening in openings:  # the soonest first; one look per (mint, due time)
            if (opening.mint, opening.due_ms) not in seen:
                seen.add((opening.mint, opening.due_ms))
                self._open(opening, result)
        return result

    def _match_prices(self, events: Sequence[MarketEvent], result: MatchResult) -> None:
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
                log.warning("market event for an unknown pair", extra={"pair": directions[0]})
                continue
            result.pairs += 1
            snapshots = self._router.snapshots(a, b)
            for mint_in, mint_out in directions:
                token_in, token_out = (a, b) if mint_in == a.mint else (b, a)
                found.extend(self._confirmed(snapshots, token_in, token_out, latest[(mint_in, mint_out)], result))
        if found:
            self._trigger(found, result)

    # -- sniper orders: a pool opens ------------------------------------------------------------
    def _now_ms(self) -> int:
        return round(self._clock.now() * 1000)

    def _open(self, event: LaunchEvent, result: MatchResult) -> None:
        """Trigger the orders watching ``event.mint`` whose delay is over; an event for those
        still waiting; or, for an event that came too early, the same event again, closer."""
        if self._sniper_book is None or self._launches is None or self._events is None:
            log.warning("an opening reached a matcher without a sniper book", extra={"mint": event.mint})
            return
        if event.due_ms - self._now_ms() > MAX_OPENING_WAIT_SECONDS * 1000:
            launch = self._launches.launch_of(event.mint)
            if launch is not None:
                publish_opening(self._events, launch, event.due_ms, self._launches.slot(), self._clock)
            return
        entries = self._sniper_book.entries(event.mint)
        launch = self._launches.launch_of(event.mint) if entries else None
        if launch is None:
            if entries:
                log.warning("an opening for a mint never launched", extra={"mint": event.mint})
            return
        result.pairs += 1
        result.candidates += len(entries)
        slot_ms = self._launches.slot_ms
        live = [e for e in entries if e.expires_ms > self._now_ms()]  # the overdue are the sweep's
        if not live:
            return
        first_due = min(launch.due_at_ms(e.delay_slots, slot_ms) for e in live)
        if first_due - self._now_ms() > MAX_OPENING_WAIT_SECONDS * 1000:  # only longer delays wait
            publish_opening(self._events, launch, first_due, self._launches.slot(), self._clock)
            return
        while (wait := first_due - self._now_ms()) > 0:  # the pool (plus the delay) is not open yet
            self._clock.sleep(wait / 1000)
        now_ms = self._now_ms()
        due = [e for e in live if launch.due_at_ms(e.delay_slots, slot_ms) <= now_ms]
        later = [e for e in live if launch.due_at_ms(e.delay_slots, slot_ms) > now_ms]
        if due:
            slot = self._launches.slot()
            outcomes = self._in_parallel(lambda e: self._write_opening(e, launch, slot, event), due)
            triggered = [e for e, (moved, _stale) in zip(due, outcomes, strict=True) if moved]
            stale = [e for e, (_moved, is_stale) in zip(due, outcomes, strict=True) if is_stale]
            if triggered:
                # Sent before the entries leave the book, as for limit orders.
                self._queue.send_orders([e.order_id for e in triggered])
                result.triggered.extend(e.order_id for e in triggered)
            self._sniper_book.discard(event.mint, [*triggered, *stale])
            result.discarded += len(stale)
        if later:
            next_due = min(launch.due_at_ms(e.delay_slots, slot_ms) for e in later)
            publish_opening(self._events, launch, next_due, self._launches.slot(), self._clock)

    def _in_parallel(self, write: Callable[[SniperEntry], tuple[bool, bool]],
                     entries: Sequence[SniperEntry]) -> list[tuple[bool, bool]]:
        workers = min(self._max_workers, len(entries))
        if workers <= 1:
            return [write(e) for e in entries]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opening") as pool:
            return list(pool.map(keep_log_keys(write), entries))  # the invocation's keys on their lines

    def _write_opening(self, entry: SniperEntry, launch: PoolLaunch, slot: int,
                       event: LaunchEvent) -> tuple[bool, bool]:
        """(triggered, stale): one conditional write ``waiting → routing``, which also gives the
        order its token's symbol and decimals, learnt from the launch."""
        at = iso(datetime.fromtimestamp(self._clock.now(), UTC))
        trigger = pool_created(launch, slot, entry.delay_slots, "launch", event.at_ms)
        new = OrderEvent(entry.order_id, entry.version + 1, OrderStatus.ROUTING, at, {"trigger": trigger})
        fields = {"tokenOut": launch.token.symbol, "tokenOutDecimals": launch.token.decimals}
        refused = self._orders.transition_unread(entry.order_id, entry.version, OrderStatus.WAITING, new,
                                                 fields=fields, expires_after=at)
        if refused is None:
            log.info("sniper order triggered", extra={"orderId": entry.order_id, "mint": launch.token.mint,
                                                      "pool": launch.pool_id, "slot": slot,
                                                      "delaySlots": entry.delay_slots})
            return True, False
        stale = refused.status is None or refused.version > entry.version or (
            refused.version == entry.version and refused.status is not OrderStatus.WAITING)
        return False, stale

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
                outcomes = list(pool.map(keep_log_keys(self._write), found))
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
            log.info("limit order triggered", extra={"orderId": entry.order_id,
                                                     "price": event.data["trigger"]["price"],
                                                     "limitPrice": str(entry.limit_price), "slot": t.event.slot})
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


class _Forgets(Protocol):
    def forget(self, order: WaitingOrder) -> None: ...


class WaitingBooks:
    """Both books, for what acts on waiting orders of either type (the sweep)."""

    def __init__(self, limit: TriggerBook, sniper: SniperBook) -> None:
        self.limit = limit
        self.sniper = sniper

    def forget(self, order: WaitingOrder) -> None:
        (self.sniper if order.type == OrderType.SNIPER.value else self.limit).forget(order)


def resend_openings(waiting: Iterable[WaitingOrder], launches: Launches, sink: MarketEventSink,
                    clock: Clock) -> list[str]:
    """The mints whose pool opened (plus the delay) more than ``OPENING_GRACE_SECONDS`` ago while
    sniper orders still wait on them: their opening was lost (a message that expired, a book Redis
    lost); it is published again, due now. Returns those mints."""
    now_ms = round(clock.now() * 1000)
    soonest: dict[str, int] = {}
    for item in waiting:
        if item.status is OrderStatus.WAITING and parse_iso(item.expires_at).timestamp() * 1000 > now_ms:
            mint = item.token_out.mint
            soonest[mint] = min(soonest.get(mint, item.delay_slots), item.delay_slots)
    resent = []
    for mint, delay in soonest.items():
        launch = launches.launch_of(mint)
        if launch is None or launch.due_at_ms(delay, launches.slot_ms) + OPENING_GRACE_SECONDS * 1000 > now_ms:
            continue
        publish_opening(sink, launch, now_ms, launches.slot(), clock)
        resent.append(mint)
    if resent:
        log.warning("openings no matcher acted on; published again", extra={"mints": resent})
    return resent


def sweep(orders: WaitingOrders, book: _Forgets, queue: OrderQueue, clock: Clock,
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
        log.warning("triggered orders not picked up; sent again", extra={"orderIds": result.resent})
        queue.send_orders(result.resent)
    return result
