"""The simulated cluster's state in Redis (the ``SimState`` port): one market and one chain for
every worker in every container.

Every key lives under ``<prefix>:`` (``Settings.redis_prefix``) and carries a TTL:
``sim:clock`` (genesis, settled time, last tick), ``sim:pool:<id>`` (one pool's state),
``sim:sig:<signature>`` (every accepted transaction and how it ended) and ``sim:pending``
(a sorted set of the transactions still to land, scored by landing time).

A transaction is redis-py's optimistic pattern: a pipeline WATCHes the keys the body's decision
depends on, the body's reads run at once, its writes are queued after MULTI and sent with EXEC.
If a watched key changed in between, EXEC refuses (``WatchError``) and the body runs again on
fresh values. The simulation logic stays in Python; Redis only orders the writes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import RedisError, WatchError

from ..domain import RpcError
from ..routing.state import StateTxn

__all__ = ["RedisSimState"]

T = TypeVar("T")
MAX_ATTEMPTS = 50


def _unavailable(exc: RedisError) -> RpcError:
    """Redis's own words (``Error 111 connecting to 127.0.0.1:6379. Connection refused.``), in a sentence."""
    reason = str(exc).strip() or type(exc).__name__
    return RpcError(f"the simulated cluster's state (Redis) could not be read or written: {reason}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisTxn:
    def __init__(self, client: Any, pipe: Any, prefix: str) -> None:
        self._client = client
        self._pipe = pipe
        self._prefix = prefix
        self.writes: list[Callable[[Any], None]] = []

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    def watch(self, *keys: str) -> None:
        if keys:
            self._pipe.watch(*[self._key(k) for k in keys])

    def read(self, keys: Sequence[str], due: Sequence[tuple[str, int]] = ()) -> tuple[
            list[str | None], list[list[tuple[str, int]]]]:
        # Reads go in one pipeline on another connection: once WATCH has been answered, any
        # change after these reads is a change after WATCH, and EXEC refuses it all the same.
        if not keys and not due:
            return [], []
        pipe = self._client.pipeline(transaction=False)
        if keys:
            pipe.mget([self._key(k) for k in keys])
        for key, max_score in due:
            pipe.zrangebyscore(self._key(key), "-inf", max_score, withscores=True)
        results = pipe.execute()
        values = [_text(v) for v in results[0]] if keys else []
        found = [[(str(_text(m)), int(score)) for m, score in members] for members in results[1 if keys else 0:]]
        return values, found

    def get(self, *keys: str) -> list[str | None]:
        return self.read(keys)[0]

    def due(self, key: str, max_score: int) -> list[tuple[str, int]]:
        return self.read((), [(key, max_score)])[1][0]

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        full = self._key(key)
        self.writes.append(lambda p: p.set(full, value, ex=ttl_seconds))

    def zadd(self, key: str, member: str, score: int, ttl_seconds: int) -> None:
        full = self._key(key)

        def write(p: Any) -> None:
            p.zadd(full, {member: score})
            p.expire(full, ttl_seconds)

        self.writes.append(write)

    def zrem(self, key: str, *members: str) -> None:
        full = self._key(key)
        if members:
            self.writes.append(lambda p: p.zrem(full, *members))

    def delete(self, *keys: str) -> None:
        full = [self._key(k) for k in keys]
        if full:
            self.writes.append(lambda p: p.delete(*full))


class RedisSimState:
    def __init__(self, client: Any, *, prefix: str = "oe") -> None:
        self._r = client
        self._prefix = prefix
        self._lock = threading.Lock()
        self.conflicts = 0  # transaction attempts refused because a watched key changed

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    def read(self, keys: Sequence[str], heads: Sequence[str] = ()) -> tuple[list[str | None],
                                                                             list[tuple[str, int] | None]]:
        if not keys and not heads:
            return [], []
        try:
            pipe = self._r.pipeline(transaction=False)
            if keys:
                pipe.mget([self._key(k) for k in keys])
            for head in heads:
                pipe.zrange(self._key(head), 0, 0, withscores=True)
            results = pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc
        values = [_text(v) for v in results[0]] if keys else []
        firsts: list[tuple[str, int] | None] = []
        for found in results[1 if keys else 0:]:
            firsts.append((str(_text(found[0][0])), int(found[0][1])) if found else None)
        return values, firsts

    def create(self, key: str, value: str, ttl_seconds: int) -> str:
        full = self._key(key)
        try:
            pipe = self._r.pipeline(transaction=False)
            pipe.set(full, value, nx=True, ex=ttl_seconds)
            pipe.get(full)
            _created, stored = pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from exc
        return _text(stored) or value

    def transaction(self, body: Callable[[StateTxn], T]) -> T:
        for attempt in range(MAX_ATTEMPTS):
            try:
                with self._r.pipeline(transaction=True) as pipe:
                    txn = _RedisTxn(self._r, pipe, self._prefix)
                    result = body(txn)
                    if txn.writes:
                        pipe.multi()
                        for write in txn.writes:
                            write(pipe)
                        pipe.execute()
                    return result  # leaving the block UNWATCHes a read-only body's keys
            except WatchError:
                with self._lock:
                    self.conflicts += 1
                if attempt >= 2:  # heavily contended: let the others finish first
                    time.sleep(random.uniform(0, 0.001 * attempt))
            except RedisError as exc:
                raise _unavailable(exc) from exc
        raise RpcError(f"the simulated cluster's state stayed too contended: {MAX_ATTEMPTS} attempts conflicted "
                       "with other workers")
