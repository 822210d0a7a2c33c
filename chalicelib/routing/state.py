"""Where the simulated cluster keeps its state, as a port: pools, the cluster clock, every
signature, the transactions waiting to land.

Two implementations hold the same data: ``InMemorySimState`` here (one process, no I/O: the
unit tier) and ``RedisSimState`` (``adapters/redis_sim_state.py``: every worker in every
container shares it). The simulation logic above them is written once.

A change is an optimistic transaction: ``transaction(body)`` runs ``body`` with a ``StateTxn``.
The body ``watch``-es the keys its decision depends on, reads, and buffers writes; the writes
apply all together, and only if no watched key changed in the meantime, else the body runs
again from the start (so it must do nothing but read and buffer writes). A body that raises
writes nothing. Values are strings (compact JSON); sorted sets map members to integer scores.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

__all__ = ["InMemorySimState", "SimState", "StateTxn"]

T = TypeVar("T")


class StateTxn(Protocol):
    """One attempt of an optimistic transaction."""

    def watch(self, *keys: str) -> None:
        """Conflict on these keys: if one changes before the writes apply, the body runs again."""
        ...

    def read(self, keys: Sequence[str], due: Sequence[tuple[str, int]] = ()) -> tuple[
            list[str | None], list[list[tuple[str, int]]]]:
        """In one round trip: current values (``None`` for a missing key), and for each
        ``(sorted set, max_score)`` its members scored at most ``max_score``, lowest first.
        Watch first what the decision depends on."""
        ...

    def get(self, *keys: str) -> list[str | None]:
        """``read`` of values only."""
        ...

    def due(self, key: str, max_score: int) -> list[tuple[str, int]]:
        """``read`` of one sorted set only."""
        ...

    def set(self, key: str, value: str, ttl_seconds: int) -> None: ...

    def zadd(self, key: str, member: str, score: int, ttl_seconds: int) -> None: ...

    def zrem(self, key: str, *members: str) -> None: ...

    def delete(self, *keys: str) -> None: ...


class SimState(Protocol):
    def read(self, keys: Sequence[str], heads: Sequence[str] = ()) -> tuple[list[str | None],
                                                                             list[tuple[str, int] | None]]:
        """In one round trip: the values of ``keys``, and the lowest-scored member of each sorted
        set in ``heads`` (``None`` when empty). Not a transaction: a consistent enough look to
        decide whether one is needed."""
        ...

    def create(self, key: str, value: str, ttl_seconds: int) -> str:
        """Set ``key`` only if it does not exist (SET NX); returns the value it holds now."""
        ...

    def transaction(self, body: Callable[[StateTxn], T]) -> T:
        """Run ``body`` until its writes apply without conflict; returns what it returned."""
        ...


class _MemoryTxn:
    def __init__(self, state: InMemorySimState) -> None:
        self._state = state
        self.writes: list[Callable[[], None]] = []  # applied in order, once the body returned

    def watch(self, *keys: str) -> None:
        """Nothing to do: the whole transaction holds the state's lock."""

    def read(self, keys: Sequence[str], due: Sequence[tuple[str, int]] = ()) -> tuple[
            list[str | None], list[list[tuple[str, int]]]]:
        return [self._state.values.get(k) for k in keys], [self.due(k, m) for k, m in due]

    def get(self, *keys: str) -> list[str | None]:
        return [self._state.values.get(k) for k in keys]

    def due(self, key: str, max_score: int) -> list[tuple[str, int]]:
        members = self._state.sorted_sets.get(key, {})
        return sorted(((m, s) for m, s in members.items() if s <= max_score), key=lambda ms: (ms[1], ms[0]))

    def set(self, key: str, value: str, ttl_seconds: int) -> None:
        self.writes.append(lambda: self._state.values.__setitem__(key, value))

    def zadd(self, key: str, member: str, score: int, ttl_seconds: int) -> None:
        self.writes.append(lambda: self._state.sorted_sets.setdefault(key, {}).__setitem__(member, score))

    def zrem(self, key: str, *members: str) -> None:
        def remove() -> None:
            remaining = self._state.sorted_sets.get(key, {})
            for member in members:
                remaining.pop(member, None)
            if not remaining:
                self._state.sorted_sets.pop(key, None)

        self.writes.append(remove)

    def delete(self, *keys: str) -> None:
        def remove() -> None:
            for key in keys:
                self._state.values.pop(key, None)
                self._state.sorted_sets.pop(key, None)

        self.writes.append(remove)


class InMemorySimState:
    """The state in this process's memory: for the unit tier and single-process tools.

    TTLs are accepted and ignored (nothing here outlives the process). ``transactions`` counts
    the bodies that ran, so tests can see that a read-only look did not need one.
    """

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.sorted_sets: dict[str, dict[str, int]] = {}
        self.transactions = 0
        self._lock = threading.RLock()

    def read(self, keys: Sequence[str], heads: Sequence[str] = ()) -> tuple[list[str | None],
                                                                             list[tuple[str, int] | None]]:
        with self._lock:
            values = [self.values.get(k) for k in keys]
            firsts: list[tuple[str, int] | None] = []
            for key in heads:
                members = self.sorted_sets.get(key)
                firsts.append(min(members.items(), key=lambda ms: (ms[1], ms[0])) if members else None)
            return values, firsts

    def create(self, key: str, value: str, ttl_seconds: int) -> str:
        with self._lock:
            return self.values.setdefault(key, value)

    def transaction(self, body: Callable[[StateTxn], T]) -> T:
        with self._lock:
            self.transactions += 1
            txn = _MemoryTxn(self)
            result = body(txn)  # raises: nothing was written
            for write in txn.writes:
                write()
            return result
