"""Sniper orders: how soon after a pool opens the first sniper on it has sent its swap.

    python -m bench.run --only sniper

On the local stack (in this process, the schedules at their local rates, the venues' realistic
quote latency), each round launches a token whose pool opens 10 slots (4 s) later, with two
sniper orders on its mint, and measures from the pool's open (``trigger.openAt``, the slot the
launch named) to the first of them reaching ``submitted`` (its signed swap persisted, then sent):
the opening's delayed market event and its poller, the matcher waiting out the rest, its
conditional writes and the orders queue, the worker's checks, quotes, ``building`` and
``submitted``. The rounds alternate the two ways a sniper meets its launch:

* placed before the launch (the mint is known in advance here): the launch publishes the opening;
* placed after the launch, before the pool opens: the worker arming it publishes the opening.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

from .limit import ms, pct, wait_for_order
from .run import delete_keys

__all__ = ["open_to_submitted", "run"]

KEY = "bench-key"
OPEN_IN_SLOTS = 10  # 4 s: the opening goes out with DelaySeconds 2 and arrives a second or two early
SNIPERS = 2


def _summary(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"samples": 0}
    return {"samples": len(latencies), "p50Ms": round(pct(latencies, 50), 1), "p95Ms": round(pct(latencies, 95), 1),
            "maxMs": round(max(latencies), 1)}


def open_to_submitted(rounds: int = 20, redis_url: str | None = None, prefix: str = "bench-sniper") -> dict[str, Any]:
    import httpx

    from chalicelib.api.services import get_services
    from chalicelib.routing.launches import LaunchTerms
    from chalicelib.routing.market import SimulatedMarket
    from devstack.stack import DevStack

    env = {"API_KEYS": f"{KEY}:bench", "RATE_LIMIT_PER_MIN": "1000000", "LOG_LEVEL": "WARNING",
           "LAUNCH_EVERY_SECONDS": "0", "REDIS_PREFIX": prefix}
    by_path: dict[str, list[float]] = {"placedBeforeLaunch": [], "placedAfterLaunch": []}
    failures: list[str] = []
    with DevStack(rest_port=0, ws_port=0, env=env, redis_url=redis_url) as stack, \
            httpx.Client(base_url=stack.urls["rest"], headers={"x-api-key": KEY}, timeout=30) as http:
        services = get_services()  # the stack's engine: this process is its container

        def wait(order_id: str, done: Any, timeout: float = 30) -> dict[str, Any]:
            return wait_for_order(http, order_id, done, timeout)

        def snipe(mint: str) -> list[str]:
            ids = []
            for _ in range(SNIPERS):
                accepted = http.post("/api/orders/execute", json={
                    "type": "sniper", "tokenIn": "SOL", "tokenOut": mint, "amount": "0.1", "maxPrice": "0.001",
                    "slippageBps": 1000}).json()
                ids.append(accepted["orderId"])
            for order_id in ids:
                wait(order_id, lambda o: o["status"] != "pending")
            return ids

        for i in range(rounds):
            if i % 2 == 0:
                path = "placedBeforeLaunch"
                nonce = os.urandom(16)
                ids = snipe(SimulatedMarket.mint_for(nonce))
                services.market.launch(LaunchTerms(f"B{i}", 6, "raydium", 50 * 10**9, Decimal("0.00002"),
                                                   OPEN_IN_SLOTS, True, True, True), nonce=nonce)
            else:
                path = "placedAfterLaunch"
                launched = http.post("/api/sim/launches", json={"symbol": f"A{i}", "liquidity": "50",
                                                                 "openInSlots": OPEN_IN_SLOTS}).json()
                ids = snipe(launched["mint"])
            submitted: list[float] = []
            for order_id in ids:
                done = wait(order_id, lambda o: o["status"] not in ("pending", "waiting", "routing", "building"))
                events = {e["status"]: e for e in done["history"]}
                if "submitted" not in events:
                    failures.append(f"{order_id} {done['status']}: {done.get('error')}")
                    continue
                open_at = ms(events["routing"]["data"]["trigger"]["openAt"])
                submitted.append(ms(events["submitted"]["at"]) - open_at)
            if submitted:
                by_path[path].append(min(submitted))
    every = [v for values in by_path.values() for v in values]
    return {"rounds": rounds, "snipersPerRound": SNIPERS, "openInSlots": OPEN_IN_SLOTS, **_summary(every),
            "byPath": {path: _summary(values) for path, values in by_path.items()}, "failures": failures,
            "budgetP50Ms": 500}


def run(redis_url: str | None = None) -> dict[str, Any]:
    prefix = f"bench-sniper-{time.time_ns() % 10**8}"
    try:
        return {"openToSubmitted": open_to_submitted(redis_url=redis_url, prefix=prefix)}
    finally:
        delete_keys(redis_url, prefix)
