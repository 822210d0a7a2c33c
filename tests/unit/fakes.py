"""In-memory stand-ins for the executor's ports: the same contract as the DynamoDB adapter."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chalicelib.domain import Order, OrderEvent, OrderStatus, Token, parse_iso
from chalicelib.execution.ports import (
    BookEntry,
    SniperEntry,
    StaleOrderError,
    TransitionRefused,
    WaitingOrder,
)


@dataclass
class InMemoryOrderStore:
    orders: dict[str, Order] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, order_id: str) -> Order | None:
        with self.lock:
            order = self.orders.get(order_id)
            return copy.deepcopy(order) if order else None

    def create(self, order: Order) -> tuple[Order, bool]:
        with self.lock:
            if order.order_id in self.orders:
                return copy.deepcopy(self.orders[order.order_id]), False
            self.orders[order.order_id] = copy.deepcopy(order)
            return order, True

    def save(self, order: Order, expected_version: int) -> None:
        with self.lock:
            current = self.orders[order.order_id]
            if current.version != expected_version:
                raise StaleOrderError(f"{order.order_id} at {current.version}, not {expected_version}",
                                      expected_version)
            self.orders[order.order_id] = copy.deepcopy(order)

    def transition_unread(self, order_id: str, expected_version: int, expected_status: OrderStatus,
                          event: OrderEvent, *, fields: Mapping[str, Any] | None = None,
                          expires_before: str | None = None, expires_after: str | None = None,
                          ) -> TransitionRefused | None:
        with self.lock:
            current = self.orders.get(order_id)
            if current is None:
                return TransitionRefused(None, 0)
            expiry = current.expires_at or ""
            if (current.version != expected_version or current.status is not expected_status
                    or (expires_before is not None and not expiry <= expires_before)
                    or (expires_after is not None and not expiry > expires_after)):
                return TransitionRefused(current.status, current.version)
            current.transition(event.status, event.data)
            current.history[-1] = event
            if fields and "quotes" in fields:
                current.quotes = list(fields["quotes"])
            if fields and "tokenOutDecimals" in fields:  # a sniper's token, learnt at its launch
                current.token_out = Token(fields["tokenOut"], current.token_out.mint, fields["tokenOutDecimals"])
            return None

    def waiting(self, order_type: str, due_by: str | None = None) -> Iterator[WaitingOrder]:
        with self.lock:
            found = [o for o in self.orders.values() if o.type.value == order_type
                     and (o.status is OrderStatus.WAITING or o.trigger is not None)]
        for o in found:
            if due_by is None or (o.expires_at or "") <= due_by:
                yield WaitingOrder(o.order_id, o.client_id, o.status, o.version, o.type.value, o.token_in,
                                   o.token_out, o.amount_in, o.limit_price, o.expires_at or "", o.delay_slots)


@dataclass
class InMemoryBook:
    """The trigger book's contract in memory: entries by (mintIn, mintOut), a version per entry."""

    entries: dict[tuple[str, str], dict[tuple[str, int], BookEntry]] = field(default_factory=dict)
    is_ready: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, order: Order, version: int) -> None:
        assert order.limit is not None and order.expires_at is not None
        entry = BookEntry(order.order_id, version, order.amount_in, order.required_out(),
                          int(parse_iso(order.expires_at).timestamp() * 1000), order.limit)
        with self.lock:
            self.entries.setdefault((order.token_in.mint, order.token_out.mint), {})[(order.order_id, version)] = entry

    def remove(self, order: Order, version: int) -> None:
        with self.lock:
            self.entries.get((order.token_in.mint, order.token_out.mint), {}).pop((order.order_id, version), None)

    def forget(self, order: WaitingOrder) -> None:
        with self.lock:
            self.entries.get((order.token_in.mint, order.token_out.mint), {}).pop((order.order_id, order.version),
                                                                                None)

    def discard(self, token_in: Token, token_out: Token, entries: Sequence[BookEntry]) -> None:
        with self.lock:
            for e in entries:
                self.entries.get((token_in.mint, token_out.mint), {}).pop((e.order_id, e.version), None)

    def candidates(self, token_in: Token, token_out: Token, best_price: Decimal) -> list[BookEntry]:
        with self.lock:
            book = self.entries.get((token_in.mint, token_out.mint), {})
            return sorted((e for e in book.values() if e.limit_price <= best_price), key=lambda e: e.limit_price)

    def watched(self, pairs: Sequence[tuple[Token, Token]]) -> list[tuple[Token, Token]]:
        with self.lock:
            return [p for p in pairs if not self.is_ready or self.entries.get((p[0].mint, p[1].mint))]

    def ready(self) -> bool:
        return self.is_ready

    def rebuild(self, orders: Iterable[WaitingOrder]) -> int:
        raise NotImplementedError

    def versions(self, order_id: str) -> list[int]:
        with self.lock:
            return sorted(v for book in self.entries.values() for (i, v) in book if i == order_id)


@dataclass
class InMemorySniperBook:
    """The sniper book's contract in memory: entries by mint, a version per entry."""

    entries_by_mint: dict[str, dict[tuple[str, int], SniperEntry]] = field(default_factory=dict)
    is_ready: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, order: Order, version: int) -> None:
        assert order.expires_at is not None
        entry = SniperEntry(order.order_id, version, int(parse_iso(order.expires_at).timestamp() * 1000),
                            order.delay_slots)
        with self.lock:
            self.entries_by_mint.setdefault(order.token_out.mint, {})[(order.order_id, version)] = entry

    def remove(self, order: Order, version: int) -> None:
        with self.lock:
            self.entries_by_mint.get(order.token_out.mint, {}).pop((order.order_id, version), None)

    def forget(self, order: WaitingOrder) -> None:
        with self.lock:
            self.entries_by_mint.get(order.token_out.mint, {}).pop((order.order_id, order.version), None)

    def discard(self, mint: str, entries: Sequence[SniperEntry]) -> None:
        with self.lock:
            for e in entries:
                self.entries_by_mint.get(mint, {}).pop((e.order_id, e.version), None)

    def entries(self, mint: str) -> list[SniperEntry]:
        with self.lock:
            return sorted(self.entries_by_mint.get(mint, {}).values(), key=lambda e: (e.delay_slots, e.order_id))

    def watched(self, mint: str) -> bool:
        with self.lock:
            return not self.is_ready or bool(self.entries_by_mint.get(mint))

    def ready(self) -> bool:
        return self.is_ready

    def rebuild(self, orders: Iterable[WaitingOrder]) -> int:
        raise NotImplementedError

    def versions(self, order_id: str) -> list[int]:
        with self.lock:
            return sorted(v for book in self.entries_by_mint.values() for (i, v) in book if i == order_id)


@dataclass
class RecordingSink:
    """The market events queue: what was published, with its DelaySeconds."""

    published: list[tuple[dict[str, Any], int]] = field(default_factory=list)

    def publish(self, event: Mapping[str, Any], delay_seconds: int = 0) -> None:
        self.published.append((dict(event), delay_seconds))

    def take(self) -> list[tuple[dict[str, Any], int]]:
        taken, self.published = self.published, []
        return taken


@dataclass
class RecordingQueue:
    """The orders queue: the ids sent to the worker."""

    sent: list[str] = field(default_factory=list)

    def send_orders(self, order_ids: Sequence[str]) -> None:
        self.sent.extend(order_ids)
