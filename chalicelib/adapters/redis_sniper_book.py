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

from ..domain import Order, OrderStatus, OrderType
from ..execution.ports import SniperEntry, WaitingOrder
from .redis_book import SortedSetBook, expires_ms, text

__all__ = ["RedisSniperBook"]

def _member(order_id: str, version: int, expires_ms: int, delay_slots: int) -> str:
    return f"{order_id}|{version}|{expires_ms}|{delay_slots}"


def _entry(member: str) -> SniperEntry:
    order_id, version, expires_ms, delay_slots = member.split("|")
    return SniperEntry(order_id, int(version), int(expires_ms), int(delay_slots), ref=member)


class RedisSniperBook(SortedSetBook):
    _kind = "sniper"

    # -- keys ----------------------------------------------------------------------------------
    def key(self, mint: str) -> str:
        return f"{self._prefix}:book:sniper:{mint}"

    @staticmethod
    def member(order: Order, version: int) -> str:
        if order.type is not OrderType.SNIPER or order.expires_at is None:
            raise ValueError(f"order {order.order_id} is not a sniper order")
        return _member(order.order_id, version, expires_ms(order.expires_at), order.delay_slots)

    # -- changes -------------------------------------------------------------------------------
    def add(self, order: Order, version: int) -> None:
        self._add(self.key(order.token_out.mint), self.member(order, version), order.delay_slots)

    def remove(self, order: Order, version: int) -> None:
        self._r.zrem(self.key(order.token_out.mint), self.member(order, version))

    def forget(self, order: WaitingOrder) -> None:
        member = _member(order.order_id, order.version, expires_ms(order.expires_at), order.delay_slots)
        self._r.zrem(self.key(order.token_out.mint), member)

    def discard(self, mint: str, entries: Sequence[SniperEntry]) -> None:
        if entries:
            self._r.zrem(self.key(mint), *[e.ref for e in entries])

    # -- reads ---------------------------------------------------------------------------------
    def entries(self, mint: str) -> list[SniperEntry]:
        return [_entry(text(m)) for m in self._r.zrange(self.key(mint), 0, -1)]

    def watched(self, mint: str) -> bool:
        pipe = self._r.pipeline(transaction=False)
        pipe.exists(self.ready_key)
        pipe.exists(self.key(mint))
        ready, held = pipe.execute()
        return not ready or bool(held)

    def rebuild(self, orders: Iterable[WaitingOrder]) -> int:
        return self._rebuild(
            (self.key(order.token_out.mint),
             _member(order.order_id, order.version, expires_ms(order.expires_at), order.delay_slots),
             order.delay_slots)
            for order in orders
            if order.status is OrderStatus.WAITING and order.type == OrderType.SNIPER.value
        )
