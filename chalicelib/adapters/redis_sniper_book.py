"""The sniper book in Redis (the ``SniperBook`` port): waiting sniper orders by the mint they watch.

One sorted set per mint, ``<prefix>:book:sniper:<mint>``, scored by the order's ``delaySlots``, so
that the orders a pool's opening may trigger now come first. A member carries what the matcher
needs to trigger the order with one conditional write, without reading it:
``<orderId>|<version>|<expiresMs>|<delaySlots>``; the version is part of the member, as in the
limit book, so removing an old entry can never remove a newer one.

Like the limit book it is a cache of the orders table's ``waiting`` index, with a marker of its
own, ``<prefix>:book:sniper:ready``, that expires sooner than the books: when the marker is
missing the matcher rebuilds the book from the index before using it, and a launch publishes its
opening whenever the book cannot say that nobody watches its mint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..domain import Order, OrderStatus, OrderType, parse_iso
from ..execution.ports import SniperEntry, WaitingOrder
from .redis_book import BOOK_TTL_SECONDS, READY_TTL_SECONDS

__all__ = ["RedisSniperBook"]

_REBUILD_CHUNK = 1000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _member(order_id: str, version: int, expires_ms: int, delay_slots: int) -> str:
    return f"{order_id}|{version}|{expires_ms}|{delay_slots}"


def _entry(member: str) -> SniperEntry:
    order_id, version, expires_ms, delay_slots = member.split("|")
    return SniperEntry(order_id, int(version), int(expires_ms), int(delay_slots), ref=member)


def _expires_ms(expires_at: str) -> int:
    return int(parse_iso(expires_at).timestamp() * 1000)


class RedisSniperBook:
    def __init__(self, client: Any, *, prefix: str = "oe") -> None:
        self._r = client
        self._prefix = prefix

    # -- keys ----------------------------------------------------------------------------------
    def key(self, mint: str) -> str:
        return f"{self._prefix}:book:sniper:{mint}"

    @property
    def ready_key(self) -> str:
        return f"{self._prefix}:book:sniper:ready"

    @staticmethod
    def member(order: Order, version: int) -> str:
        if order.type is not OrderType.SNIPER or order.expires_at is None:
            raise ValueError(f"order {order.order_id} is not a sniper order")
        return _member(order.order_id, version, _expires_ms(order.expires_at), order.delay_slots)

    # -- changes -------------------------------------------------------------------------------
    def add(self, order: Order, version: int) -> None:
        key = self.key(order.token_out.mint)
        pipe = self._r.pipeline(transaction=False)
        pipe.zadd(key, {self.member(order, version): order.delay_slots})
        pipe.expire(key, BOOK_TTL_SECONDS)
        pipe.execute()

    def remove(self, order: Order, version: int) -> None:
        self._r.zrem(self.key(order.token_out.mint), self.member(order, version))

    def forget(self, order: WaitingOrder) -> None:
        member = _member(order.order_id, order.version, _expires_ms(order.expires_at), order.delay_slots)
        self._r.zrem(self.key(order.token_out.mint), member)

    def discard(self, mint: str, entries: Sequence[SniperEntry]) -> None:
        if entries:
            self._r.zrem(self.key(mint), *[e.ref for e in entries])

    # -- reads ---------------------------------------------------------------------------------
    def entries(self, mint: str) -> list[SniperEntry]:
        return [_entry(_text(m)) for m in self._r.zrange(self.key(mint), 0, -1)]

    def watched(self, mint: str) -> bool:
        pipe = self._r.pipeline(transaction=False)
        pipe.exists(self.ready_key)
        pipe.exists(self.key(mint))
        ready, held = pipe.execute()
        return not ready or bool(held)

    def ready(self) -> bool:
        return bool(self._r.exists(self.ready_key))

    def rebuild(self, orders: Iterable[WaitingOrder]) -> int:
        count = 0
        pipe = self._r.pipeline(transaction=False)
        keys: set[str] = set()
        for order in orders:
            if order.status is not OrderStatus.WAITING or order.type != OrderType.SNIPER.value:
                continue
            key = self.key(order.token_out.mint)
            member = _member(order.order_id, order.version, _expires_ms(order.expires_at), order.delay_slots)
            pipe.zadd(key, {member: order.delay_slots})
            keys.add(key)
            count += 1
            if count % _REBUILD_CHUNK == 0:
                pipe.execute()
        for key in keys:
            pipe.expire(key, BOOK_TTL_SECONDS)
        pipe.set(self.ready_key, "1", ex=READY_TTL_SECONDS)
        pipe.execute()
        return count
