"""The trigger book in Redis (the ``TriggerBook`` port): waiting limit orders, indexed so that a
price move finds only the orders it can fill.

One sorted set per pair and direction, ``<prefix>:book:limit:<mintIn>:<mintOut>``, scored by the
limit price (a float: the index only narrows the search; every candidate is confirmed with a
full-size quote and exact integers). A member carries what the matcher needs to confirm it and
to move it with one conditional write, without reading the order:
``<orderId>|<version>|<amountIn>|<requiredOut>|<expiresMs>|<limitPrice>``. The version is part
of the member, so an order that rests again (a new ``waiting`` version) is a new member, and
removing the old one can never remove the new.

The book is a cache of the orders table's ``waiting`` index. ``<prefix>:book:limit:ready`` marks
it complete: when the marker is missing (Redis restarted, flushed or evicted it), the book is
rebuilt from the index before it is used. The marker expires sooner than the books
(``READY_TTL_SECONDS`` against ``BOOK_TTL_SECONDS``, longer than any order waits, refreshed on
every add), so an eviction by TTL takes the marker first and a periodic rebuild reconciles what
drifted. Entries may be stale (an order triggered, cancelled or expired while it was being
rebuilt): the conditional write that moves an order is the guard, and the caller removes what it
finds stale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from ..domain import Order, OrderStatus, OrderType, Token, min_out_at_price, parse_iso
from ..execution.ports import BookEntry, WaitingOrder

__all__ = ["BOOK_TTL_SECONDS", "READY_TTL_SECONDS", "RedisTriggerBook", "SortedSetBook", "expires_ms", "text"]

BOOK_TTL_SECONDS = 31 * 24 * 60 * 60  # longer than any order waits (30 days), refreshed on every add
READY_TTL_SECONDS = 24 * 60 * 60  # a rebuild a day at the least reconciles the book with the table
_REBUILD_CHUNK = 1000


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _member(order_id: str, version: int, amount_in: int, required_out: int, expires_ms: int, limit: str) -> str:
    return f"{order_id}|{version}|{amount_in}|{required_out}|{expires_ms}|{limit}"


def _entry(member: str) -> BookEntry:
    order_id, version, amount_in, required_out, expires_ms, limit = member.split("|")
    return BookEntry(order_id, int(version), int(amount_in), int(required_out), int(expires_ms), Decimal(limit),
                     ref=member)


def _waiting_member(order: WaitingOrder) -> str:
    assert order.limit_price is not None
    required = min_out_at_price(order.amount_in, order.token_in, Decimal(order.limit_price), order.token_out)
    return _member(order.order_id, order.version, order.amount_in, required, expires_ms(order.expires_at),
                   order.limit_price)


def expires_ms(expires_at: str) -> int:
    return int(parse_iso(expires_at).timestamp() * 1000)


class SortedSetBook:
    """What the limit and the sniper book share: sorted sets under ``<prefix>:book:<kind>:``, each
    with a TTL refreshed on every add, and a ready marker that expires sooner, so that a book lost
    or left stale in Redis is rebuilt from the orders table's ``waiting`` index."""

    _kind = ""

    def __init__(self, client: Any, *, prefix: str = "oe") -> None:
        self._r = client
        self._prefix = prefix

    @property
    def ready_key(self) -> str:
        return f"{self._prefix}:book:{self._kind}:ready"

    def ready(self) -> bool:
        return bool(self._r.exists(self.ready_key))

    def _add(self, key: str, member: str, score: float) -> None:
        pipe = self._r.pipeline(transaction=False)
        pipe.zadd(key, {member: score})
        pipe.expire(key, BOOK_TTL_SECONDS)
        pipe.execute()

    def _rebuild(self, entries: Iterable[tuple[str, str, float]]) -> int:
        """Write every (key, member, score), then the ready marker; the number written."""
        count = 0
        pipe = self._r.pipeline(transaction=False)
        keys: set[str] = set()
        for key, member, score in entries:
            pipe.zadd(key, {member: score})
            keys.add(key)
            count += 1
            if count % _REBUILD_CHUNK == 0:
                pipe.execute()
        for key in keys:
            pipe.expire(key, BOOK_TTL_SECONDS)
        pipe.set(self.ready_key, "1", ex=READY_TTL_SECONDS)
        pipe.execute()
        return count


class RedisTriggerBook(SortedSetBook):
    _kind = "limit"

    # -- keys ----------------------------------------------------------------------------------
    def key(self, token_in: Token, token_out: Token) -> str:
        return f"{self._prefix}:book:limit:{token_in.mint}:{token_out.mint}"

    @staticmethod
    def member(order: Order, version: int) -> str:
        if order.limit_price is None or order.expires_at is None:
            raise ValueError(f"order {order.order_id} is not a limit order")
        return _member(order.order_id, version, order.amount_in, order.required_out(),
                       expires_ms(order.expires_at), order.limit_price)

    # -- changes -------------------------------------------------------------------------------
    def add(self, order: Order, version: int) -> None:
        self._add(self.key(order.token_in, order.token_out), self.member(order, version),
                  float(order.limit_price or 0))

    def remove(self, order: Order, version: int) -> None:
        self._r.zrem(self.key(order.token_in, order.token_out), self.member(order, version))

    def forget(self, order: WaitingOrder) -> None:
        if order.limit_price:
            self._r.zrem(self.key(order.token_in, order.token_out), _waiting_member(order))

    def discard(self, token_in: Token, token_out: Token, entries: Sequence[BookEntry]) -> None:
        if entries:
            self._r.zrem(self.key(token_in, token_out), *[e.ref for e in entries])

    # -- reads ---------------------------------------------------------------------------------
    def candidates(self, token_in: Token, token_out: Token, best_price: Decimal) -> list[BookEntry]:
        # A hair above the price, so that float rounding of a score never hides an order at it;
        # the quote decides exactly.
        bound = math.nextafter(float(best_price) * (1 + 1e-12), math.inf)
        members = self._r.zrangebyscore(self.key(token_in, token_out), "-inf", bound)
        return [_entry(text(m)) for m in members]

    def watched(self, pairs: Sequence[tuple[Token, Token]]) -> list[tuple[Token, Token]]:
        """Two commands in one round trip while nobody waits on these pairs (the marker, and one
        EXISTS of every book: a count); which books hold orders is asked only when some do."""
        if not pairs:
            return []
        keys = [self.key(token_in, token_out) for token_in, token_out in pairs]
        pipe = self._r.pipeline(transaction=False)
        pipe.exists(self.ready_key)
        pipe.exists(*keys)
        ready, held = pipe.execute()
        if not ready:
            return list(pairs)
        if not held:
            return []
        if held == len(keys) or len(keys) == 1:
            return list(pairs)
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.exists(key)
        return [pair for pair, n in zip(pairs, pipe.execute(), strict=True) if n]

    def rebuild(self, orders: Iterable[WaitingOrder]) -> int:
        return self._rebuild(
            (self.key(order.token_in, order.token_out), _waiting_member(order), float(order.limit_price))
            for order in orders
            if order.status is OrderStatus.WAITING and order.type == OrderType.LIMIT.value and order.limit_price
        )
