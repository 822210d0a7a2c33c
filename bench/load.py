"""A load generator speaking the public contract: POST, then subscribe over a WebSocket and
time every status the socket delivers. Each client sends its orders back to back (a burst) or
paced to a total rate (open loop)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from websockets.sync.client import connect

TERMINAL = {"confirmed", "failed"}


@dataclass
class OrderTrace:
    order_id: str = ""
    posted_at: float = 0.0  # wall clock, seconds
    post_seconds: float = 0.0
    subscribed_at: float = 0.0
    status_times: dict[str, float] = field(default_factory=dict)  # receipt time per status
    delivery_ms: list[float] = field(default_factory=list)  # event time -> receipt, live events only
    final: str | None = None

    @property
    def latency(self) -> float | None:
        end = self.status_times.get(self.final or "")
        return end - self.posted_at if end else None


class _Poster:
    """POSTs on one kept-alive connection, through the standard library's client: the load
    generator shares the machine with the stack it measures, and httpx cost 1.8 ms of CPU per
    POST, a fifth of what the stack spends on one, where this costs 0.2 ms."""

    def __init__(self, base_url: str, key: str, timeout: float = 30) -> None:
        split = urlsplit(base_url)
        self._address = (split.hostname or "127.0.0.1", split.port or 80)
        self._headers = {"x-api-key": key, "Content-Type": "application/json"}
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        payload = json.dumps(body)
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(*self._address, timeout=self._timeout)
            try:
                self._conn.request("POST", path, body=payload, headers=self._headers)
                response = self._conn.getresponse()
                return response.status, response.read().decode()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()  # the server closed a kept-alive connection: once more on a new one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _in_threads(sender: Callable[[int, int], None], orders: int, senders: int, name: str,
                timeout: float | None = None) -> None:
    """``sender(count, index)`` on ``senders`` threads at once, the ``orders`` shared out evenly;
    returns once they have all ended (or ``timeout`` has passed for each)."""
    threads = [threading.Thread(target=sender, args=(orders // senders + (1 if i < orders % senders else 0), i),
                                name=f"{name}-{i}") for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


def _event_time(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


@dataclass
class LoadResult:
    traces: list[OrderTrace]
    started: float
    finished: float
    errors: list[str]


def run_load(rest: str, ws: str, key: str, orders: int, senders: int, body: dict[str, Any],
             timeout: float = 240.0, rate_per_second: float | None = None) -> LoadResult:
    """Send ``orders`` from ``senders`` concurrent clients, as fast as they can or, with
    ``rate_per_second``, paced to that total rate (open loop)."""
    traces: list[OrderTrace] = []
    errors: list[str] = []
    lock = threading.Lock()
    done_all = threading.Event()
    outstanding = [orders]
    started = time.time()

    def sender(count: int, index: int) -> None:
        mine: dict[str, OrderTrace] = {}
        finished = threading.Event()
        remaining = [count]
        if count == 0:
            return
        poster = _Poster(rest, key)
        with connect(f"{ws}/?{urlencode({'apiKey': key})}", open_timeout=20) as sock:

            def reader() -> None:
                while not finished.is_set():
                    try:
                        raw = sock.recv(timeout=1)
                    except TimeoutError:
                        continue
                    except Exception:
                        return
                    now = time.time()
                    msg = json.loads(raw)
                    trace = mine.get(msg.get("orderId", ""))
                    if trace is None:
                        continue
                    if msg["type"] == "order.snapshot":
                        events = msg["order"]["history"]
                        for e in events:
                            trace.status_times.setdefault(e["status"], now)
                        status = msg["status"]
                    elif msg["type"] == "order.status":
                        status = msg["status"]
                        trace.status_times[status] = now
                        at = _event_time(msg["at"])
                        if at >= trace.subscribed_at:
                            trace.delivery_ms.append((now - at) * 1000)
                    else:
                        continue
                    if status in TERMINAL and trace.final is None:
                        trace.final = status
                        remaining[0] -= 1
                        with lock:
                            outstanding[0] -= 1
                            if outstanding[0] == 0:
                                done_all.set()
                        if remaining[0] == 0:
                            finished.set()

            reading = threading.Thread(target=reader, name=f"bench-reader-{index}", daemon=True)
            reading.start()
            for i in range(count):
                if rate_per_second:
                    # sender k of n sends at k/rate, (k+n)/rate, ...: together, the given rate
                    slot = started + (i * senders + index) / rate_per_second
                    time.sleep(max(0.0, slot - time.time()))
                trace = OrderTrace()
                t0 = time.time()
                status, text = poster.post("/api/orders/execute",
                                           {**body, "clientOrderId": f"b{index}-{i}-{t0:.6f}"})
                trace.posted_at, trace.post_seconds = t0, time.time() - t0
                if status not in (200, 202):
                    with lock:
                        errors.append(f"{status} {text[:200]}")
                        outstanding[0] -= 1
                    remaining[0] -= 1
                    continue
                trace.order_id = json.loads(text)["orderId"]
                mine[trace.order_id] = trace
                with lock:
                    traces.append(trace)
                trace.subscribed_at = time.time()
                sock.send(json.dumps({"action": "subscribe", "orderId": trace.order_id}))
            if remaining[0] == 0:
                finished.set()
            poster.close()
            finished.wait(timeout)
            finished.set()
            reading.join(5)

    _in_threads(sender, orders, senders, "bench-sender", timeout + 30)
    finished_at = max((max(t.status_times.values()) for t in traces if t.final), default=time.time())
    missing = [t.order_id for t in traces if t.final is None]
    if missing:
        errors.append(f"{len(missing)} orders reached no terminal state on the socket within {timeout:.0f}s")
    return LoadResult(traces, started, finished_at, errors)


def post_only(rest: str, key: str, orders: int, senders: int, body: dict[str, Any]) -> tuple[list[float], list[str]]:
    """``orders`` POSTs from ``senders`` concurrent clients, back to back, nobody subscribing:
    each POST's seconds, and what was refused."""
    seconds: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def sender(count: int, index: int) -> None:
        poster = _Poster(rest, key)
        try:
            for i in range(count):
                t0 = time.time()
                status, text = poster.post("/api/orders/execute",
                                           {**body, "clientOrderId": f"i{index}-{i}-{t0:.6f}"})
                with lock:
                    if status in (200, 202):
                        seconds.append(time.time() - t0)
                    else:
                        errors.append(f"{status} {text[:200]}")
        finally:
            poster.close()

    _in_threads(sender, orders, senders, "bench-poster")
    return seconds, errors
