"""Time as a dependency, so the simulation and the executor run instantly under test.

``now()`` is wall-clock epoch seconds: the simulated cluster's block height is derived from a
genesis time that every process shares, so every process must read the same kind of clock.
Code that needs a duration takes differences of ``now()``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["FAKE_EPOCH", "Clock", "FakeClock", "SystemClock"]

FAKE_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: where every FakeClock starts unless told


class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when slept on: deterministic simulations in tests."""

    def __init__(self, start: float = FAKE_EPOCH) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)
