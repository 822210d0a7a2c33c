"""Live state in Redis: per-client rate limits and the client's active (non-terminal) orders.

DynamoDB stays the source of truth; losing Redis loses no order, only the fast paths. Every key
expires: a rate window after its minute, a client's active set ``ACTIVE_TTL_SECONDS`` after the
client's last order (longer than any order can stay active: an order waits at most 30 days).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import WatchError

__all__ = ["ACTIVE_TTL_SECONDS", "RateDecision", "RedisState"]

ACTIVE_TTL_SECONDS = 31 * 24 * 60 * 60
_WITHDRAW_ATTEMPTS = 5


class RateDecision:
    __slots__ = ("active_key", "added", "allowed", "key", "order_id", "remaining", "retry_after")

    def __init__(self, allowed: bool, remaining: int, retry_after: int, key: str = "", *, added: bool = False,
                 active_key: str = "", order_id: str = "") -> None:
        self.allowed = allowed
        self.remaining = remaining
        self.retry_after = retry_after
        self.key = key  # the window's counter, for a refund
        self.added = added  # ``admit`` recorded the order as active (it was not)
        self.active_key = active_key
        self.order_id = order_id


class RedisState:
    def __init__(self, client: Any, *, prefix: str = "oe") -> None:
        self._r = client
        self._prefix = prefix

    def hit_rate_limit(self, client_id: str, limit_per_min: int, *, now: float | None = None) -> RateDecision:
        """Fixed one-minute window: INCR and EXPIRE in one round trip.

        ``retry_after`` is the number of seconds until the window resets.
        """
        t = time.time() if now is None else now
        window = int(t // 60)
        key = f"{self._prefix}:rl:{client_id}:{window}"
        pipe = self._r.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 61)
        count, _ = pipe.execute()
        retry_after = max(1, 60 - int(t % 60))
        return RateDecision(int(count) <= limit_per_min, max(0, limit_per_min - int(count)), retry_after, key)

    def admit(self, client_id: str, limit_per_min: int, order_id: str, created_ms: int, *,
              now: float | None = None) -> RateDecision:
        """``hit_rate_limit`` and ``add_active`` in one round trip: intake's only Redis call for a
        new order. The entry is added only when absent (``added`` says whether it
        was), so that a request that turns out to create nothing can take back its own entry
        (``withdraw_active``, ``remove_active``) and leave another request's alone."""
        t = time.time() if now is None else now
        key = f"{self._prefix}:rl:{client_id}:{int(t // 60)}"
        active = f"{self._prefix}:active:{client_id}"
        pipe = self._r.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 61)
        pipe.zadd(active, {order_id: created_ms}, nx=True)
        pipe.expire(active, ACTIVE_TTL_SECONDS)
        count, _, added, _ = pipe.execute()
        return RateDecision(int(count) <= limit_per_min, max(0, limit_per_min - int(count)),
                            max(1, 60 - int(t % 60)), key, added=bool(added), active_key=active, order_id=order_id)

    def withdraw_active(self, decision: RateDecision, still_absent: Callable[[], bool]) -> bool:
        """Take back the entry ``admit`` added for an order that was not created, iff
        ``still_absent()`` (asked once the key is watched) says the order does not exist: another
        request for the same order that creates it records its entry again (``add_active``)
        after creating it, which either ``still_absent`` sees or aborts this removal."""
        if not decision.added:
            return False
        # The watch covers the client's whole set, so any other change to it (another request's
        # admission, a worker's removal) aborts the removal: asked again, a few times.
        for _ in range(_WITHDRAW_ATTEMPTS):
            with self._r.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(decision.active_key)
                    if not still_absent():
                        return False
                    pipe.multi()
                    pipe.zrem(decision.active_key, decision.order_id)
                    pipe.execute()
                    return True
                except WatchError:
                    continue
        return False  # left for the listing to drop once it is five minutes old

    def refund_rate_limit(self, decision: RateDecision) -> None:
        """Give back a hit that created nothing (a repeat of an order already made), in its window."""
        if decision.key:
            pipe = self._r.pipeline(transaction=False)
            pipe.decr(decision.key)
            pipe.expire(decision.key, 61)  # a window that ended meanwhile is not made immortal
            pipe.execute()

    def add_active(self, client_id: str, order_id: str, created_ms: int) -> None:
        """Record an active order. Intake calls this before the order is queued, so the worker's
        ``remove_active`` always comes after it and can never be overtaken by it."""
        key = f"{self._prefix}:active:{client_id}"
        pipe = self._r.pipeline(transaction=False)
        pipe.zadd(key, {order_id: created_ms})
        pipe.expire(key, ACTIVE_TTL_SECONDS)
        pipe.execute()

    def remove_active(self, client_id: str, *order_ids: str) -> None:
        if order_ids:
            self._r.zrem(f"{self._prefix}:active:{client_id}", *order_ids)

    def active(self, client_id: str, limit: int = 100, offset: int = 0) -> list[str]:
        """The client's non-terminal order ids, newest first."""
        return [m.decode() if isinstance(m, bytes) else str(m)
                for m in self._r.zrevrange(f"{self._prefix}:active:{client_id}", offset, offset + limit - 1)]

    def active_entries(self, client_id: str, limit: int = 100, offset: int = 0) -> list[tuple[str, int]]:
        """``active`` with each entry's score: the order's creation time, in epoch milliseconds."""
        return [(m.decode() if isinstance(m, bytes) else str(m), int(score))
                for m, score in self._r.zrevrange(f"{self._prefix}:active:{client_id}", offset, offset + limit - 1,
                                                  withscores=True)]

    def ping(self) -> bool:
        return bool(self._r.ping())
