"""Live state in Redis: per-client rate limits and the client's active (non-terminal) orders.

DynamoDB stays the source of truth; losing Redis loses no order, only the fast paths. Every key
expires: a rate window after its minute, a client's active set ``ACTIVE_TTL_SECONDS`` after the
client's last order (longer than any order can stay active: an order waits at most 30 days).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["ACTIVE_TTL_SECONDS", "RateDecision", "RedisState"]

ACTIVE_TTL_SECONDS = 31 * 24 * 60 * 60


class RateDecision:
    __slots__ = ("allowed", "key", "remaining", "retry_after")

    def __init__(self, allowed: bool, remaining: int, retry_after: int, key: str = "") -> None:
        self.allowed = allowed
        self.remaining = remaining
        self.retry_after = retry_after
        self.key = key  # the window's counter, for a refund


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

    def refund_rate_limit(self, decision: RateDecision) -> None:
        """Give back a hit that created nothing (a repeat of an order already made), in its window."""
        if decision.key:
            self._r.decr(decision.key)

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

    def ping(self) -> bool:
        return bool(self._r.ping())
