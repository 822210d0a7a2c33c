"""What Lambda's event source mappings have in common, locally: finding a source's handler and
invoking it as Lambda does (the Chalice-wrapped entry point, an event dict and a context, a
timeout), reading a partial batch response, and the threads that poll and invoke.

Each kind of source (``SqsPoller``, ``StreamPoller``) subclasses ``EventSourcePoller``: it
resolves its sources in ``_start`` and starts its threads with ``_spawn`` and ``_pool``; ``stop``
is shared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .emulator import LambdaContext

__all__ = ["DEFAULT_FUNCTION_TIMEOUT", "EventSourcePoller", "Invocation", "failed_item_identifiers"]

DEFAULT_FUNCTION_TIMEOUT = 60  # Chalice's default lambda_timeout
DEFAULT_FUNCTION_MEMORY = 128  # MB, Chalice's default lambda_memory_size


def failed_item_identifiers(response: Any, identifiers: Iterable[str]) -> set[str] | None:
    """The items a handler's ``response`` reports as failed, by Lambda's rules for partial batch
    responses; ``None`` means the whole batch failed.

    No response, no ``batchItemFailures`` or an empty list is full success; a malformed response,
    or an ``itemIdentifier`` that is missing, empty or not in the batch, fails the whole batch.
    """
    if response is None:
        return set()
    if not isinstance(response, Mapping):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    known = set(identifiers)
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, Mapping) else None
        if not isinstance(identifier, str) or not identifier or identifier not in known:
            return None
        failed.add(identifier)
    return failed


@dataclass(frozen=True)
class Invocation:
    """How one invocation ended: its response, or the error it raised, or a timeout."""

    function: str
    response: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0
    timeout: float = DEFAULT_FUNCTION_TIMEOUT

    @property
    def timed_out(self) -> bool:
        return self.error is None and self.elapsed > self.timeout

    @property
    def failed(self) -> bool:
        """A function error, as Lambda sees it: the handler raised or ran past its timeout."""
        return self.error is not None or self.timed_out


class EventSourcePoller:
    """Feeds a Chalice app's handlers of one kind of event source until ``stop()``.

    ``function_timeouts`` and ``function_memory`` map a handler's name to its Lambda timeout in
    seconds and memory in MB (from ``.chalice/config.json``).
    """

    thread_prefix = "devstack-source"
    log = logging.getLogger("devstack")

    def __init__(self, app: Any, *, region: str = "us-east-1", stage: str = "local",
                 function_timeouts: Mapping[str, float] | None = None,
                 function_memory: Mapping[str, int] | None = None) -> None:
        self.app = app
        self._region = region
        self._stage = stage
        self._timeouts = dict(function_timeouts or {})
        self._memory = dict(function_memory or {})
        self._threads: list[threading.Thread] = []
        self._executors: list[ThreadPoolExecutor] = []
        self._stopping = threading.Event()
        self._join_timeout = 10.0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            raise RuntimeError("the poller is already started")
        self._stopping.clear()
        self._start()

    def _start(self) -> None:
        """Resolve the sources and start their threads (``_spawn``, ``_pool``)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stops polling, waits for the invocations in flight, and joins every thread."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=self._join_timeout)
        for executor in self._executors:
            executor.shutdown(wait=True)
        self._threads.clear()
        self._executors.clear()

    def __enter__(self) -> EventSourcePoller:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _sleep(self, seconds: float) -> bool:
        """Wait, unless stopping; True when the poller is stopping."""
        return self._stopping.wait(seconds)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"{self.thread_prefix}-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _pool(self, workers: int, name: str) -> ThreadPoolExecutor:
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.thread_prefix}-{name}")
        self._executors.append(executor)
        return executor

    # -- functions ----------------------------------------------------------------------------
    def timeout_of(self, function: str) -> float:
        return float(self._timeouts.get(function, DEFAULT_FUNCTION_TIMEOUT))

    def memory_of(self, function: str) -> int:
        return int(self._memory.get(function, DEFAULT_FUNCTION_MEMORY))

    def invoke(self, function: str, event: dict[str, Any]) -> Invocation:
        """Call the handler as Lambda would: its Chalice entry point, the event and a context."""
        timeout = self.timeout_of(function)
        handler = self.app.handler_map[function]
        context = LambdaContext(f"{self.app.app_name}-{self._stage}-{function}", self.memory_of(function),
                                timeout, self._region)
        started = time.monotonic()
        try:
            response = handler(event, context)
        except Exception as exc:
            return Invocation(function, error=exc, elapsed=time.monotonic() - started, timeout=timeout)
        return Invocation(function, response=response, elapsed=time.monotonic() - started, timeout=timeout)
