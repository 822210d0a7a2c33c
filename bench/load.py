"""A load generator speaking the public contract: POST, then subscribe over a WebSocket and
time every status the socket delivers. Each client sends its orders back to back (a burst) or
paced to a total rate (open loop)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
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
    per_sender = [orders // senders + (1 if i < orders % senders else 0) for i in range(senders)]
    done_all = threading.Event()
    outstanding = [orders]
    started = time.time()

    def sender(count: int, index: int) -> None:
        mine: dict[str, OrderTrace] = {}
        finished = threading.Event()
        remaining = [count]
        if count == 0:
            return
        with connect(f"{ws}/?{urlencode({'apiKey': key})}", open_timeout=20) as sock, \
                httpx.Client(base_url=rest, headers={"x-api-key": key}, timeout=30) as http:

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
                resp = http.post("/api/orders/execute", json={**body, "clientOrderId": f"b{index}-{i}-{t0:.6f}"})
                trace.posted_at, trace.post_seconds = t0, time.time() - t0
                if resp.status_code not in (200, 202):
                    with lock:
                        errors.append(f"{resp.status_code} {resp.text[:200]}")
                        outstanding[0] -= 1
                    remaining[0] -= 1
                    continue
                trace.order_id = resp.json()["orderId"]
                mine[trace.order_id] = trace
                with lock:
                    traces.append(trace)
                trace.subscribed_at = time.time()
                sock.send(json.dumps({"action": "subscribe", "orderId": trace.order_id}))
            if remaining[0] == 0:
                finished.set()
            finished.wait(timeout)
            finished.set()
            reading.join(5)

    threads = [threading.Thread(target=sender, args=(n, i), name=f"bench-sender-{i}") for i, n in enumerate(per_sender)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 30)
    finished_at = max((max(t.status_times.values()) for t in traces if t.final), default=time.time())
    missing = [t.order_id for t in traces if t.final is None]
    if missing:
        errors.append(f"{len(missing)} orders reached no terminal state on the socket within {timeout:.0f}s")
    return LoadResult(traces, started, finished_at, errors)
