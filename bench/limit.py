"""Limit orders: how soon a price move triggers them, and what the matcher costs per market event.

    python -m bench.run --only limit

* **Trigger latency** on the local stack (in this process, the market tick and expiry sweep at
  their local rates): a limit order is placed 0.05 % above the best price through the REST API
  and armed by the worker; then another trader's swap on the shared market lifts that price
  through the level. The latency runs from the market event that swap published to the order's
  ``routing`` event (the matcher's conditional write): ``routing.at − trigger.eventAt``. It
  covers the market events queue, its poller, the matcher's pool reads, quotes and write. Each
  round then sells back what it bought, so the market stays where it was.
* **Matcher cost** per market event, with 1,000 and with 100,000 limit orders waiting on other
  price levels of the same pair (above the price, so no event can fill them), one order at a
  crossing level: the matcher's wall time and Redis commands for an event. The index finds the
  one candidate without reading the rest, so the two should cost the same; the ratio of the
  medians must stay at or below 2. The orders table is an in-process stand-in here (the cost of
  one conditional write does not depend on the book's size); Redis and the market are the real
  ones under a prefix of their own, deleted afterwards.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .counters import CallCounter
from .run import delete_keys

if TYPE_CHECKING:
    import httpx

__all__ = ["matcher_cost", "run", "trigger_latency"]

KEY = "bench-key"
LEVEL_ABOVE = Decimal("1.0005")


def wait_for_order(http: httpx.Client, order_id: str, done: Any, timeout: float = 30) -> dict[str, Any]:
    """The order, read through the API until ``done`` says so (a RuntimeError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        current: dict[str, Any] = http.get(f"/api/orders/{order_id}").json()
        if done(current):
            return current
        if time.monotonic() > deadline:
            raise RuntimeError(f"{order_id} still {current['status']}")
        time.sleep(0.02)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def ms(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000


# -- trigger latency on the local stack ---------------------------------------------------------------
def trigger_latency(rounds: int = 40, redis_url: str | None = None, prefix: str = "bench-limit") -> dict[str, Any]:
    import httpx

    from chalicelib.api.services import get_services
    from chalicelib.domain import get_token, price
    from devstack.stack import DevStack

    sol, usdc = get_token("SOL"), get_token("USDC")
    env = {"API_KEYS": f"{KEY}:bench", "RATE_LIMIT_PER_MIN": "1000000", "LOG_LEVEL": "WARNING",
           "QUOTE_LATENCY_MS": "0,0", "SWAP_LATENCY_MS": "0,0", "CONFIRM_POLL_MS": "5", "REDIS_PREFIX": prefix}
    latencies: list[float] = []
    with DevStack(rest_port=0, ws_port=0, env=env, redis_url=redis_url) as stack, \
            httpx.Client(base_url=stack.urls["rest"], headers={"x-api-key": KEY}, timeout=30) as http:
        services = get_services()  # the stack's engine: this process is its container
        services.matcher.ensure_book()  # as the sweep keeps it

        def wait(order_id: str, done: Any, timeout: float = 30) -> dict[str, Any]:
            return wait_for_order(http, order_id, done, timeout)

        for _ in range(rounds):
            # the venue that pays most for SOL now, and its price for a full-size trade of 1 SOL
            quotes, _ = services.router.quotes(sol, usdc, 10**9)
            best = quotes[0]
            level = (price(10**9, sol, best.amount_out, usdc) * LEVEL_ABOVE).quantize(Decimal("0.000001"))
            accepted = http.post("/api/orders/execute", json={"type": "limit", "tokenIn": "SOL", "tokenOut": "USDC",
                                                               "amount": "1", "limitPrice": str(level)}).json()
            wait(accepted["orderId"], lambda o: o["status"] != "pending")
            venue = services.market.venues[best.venue]
            bought = 0
            for _ in range(10):  # buy SOL there until it pays more than the level: through it
                bought += venue.swap(venue.quote(usdc, sol, 60_000 * 10**6), 0).amount_out
                quotes, _ = services.router.quotes(sol, usdc, 10**9)
                if price(10**9, sol, quotes[0].amount_out, usdc) >= level:
                    break
            done = wait(accepted["orderId"], lambda o: o["status"] not in ("pending", "waiting"))
            routing = next(e for e in done["history"] if e["status"] == "routing")
            trigger = routing["data"]["trigger"]
            if trigger.get("eventAt"):
                latencies.append(ms(routing["at"]) - ms(trigger["eventAt"]))
            wait(accepted["orderId"], lambda o: o["status"] in ("confirmed", "failed"))
            venue.swap(venue.quote(sol, usdc, bought), 0)  # and back
    return {
        "rounds": rounds,
        "samples": len(latencies),
        "p50Ms": round(pct(latencies, 50), 1),
        "p95Ms": round(pct(latencies, 95), 1),
        "maxMs": round(max(latencies), 1),
        "budgetP50Ms": 300,
    }


# -- the matcher's cost per event ------------------------------------------------------------------------
class _Table:
    """The orders table's side of triggering, in process: every conditional write applies."""

    def __init__(self) -> None:
        self.writes = 0

    def waiting(self, order_type: str, due_by: str | None = None) -> Any:
        return iter(())

    def transition_unread(self, *args: Any, **kwargs: Any) -> None:
        self.writes += 1
        return None


class _Queue:
    def __init__(self) -> None:
        self.sent = 0

    def send_orders(self, order_ids: Any) -> None:
        self.sent += len(order_ids)


def matcher_cost(sizes: tuple[int, ...] = (1_000, 100_000), events: int = 200, redis_url: str | None = None,
                 prefix: str = "bench-matcher") -> dict[str, Any]:
    import redis

    from chalicelib.adapters.redis_book import RedisTriggerBook
    from chalicelib.adapters.redis_sim_state import RedisSimState
    from chalicelib.domain import Order, OrderType, get_token, price
    from chalicelib.domain.clock import SystemClock
    from chalicelib.execution.triggers import MarketEvent, Matcher
    from chalicelib.routing.market import MarketSettings, SimulatedMarket
    from chalicelib.routing.router import Router

    sol, usdc = get_token("SOL"), get_token("USDC")
    if redis_url is not None:
        client = redis.Redis.from_url(redis_url)
    else:  # no Redis server answers: fakeredis in this process (slower per command, same count)
        import fakeredis

        client = fakeredis.FakeRedis()
    results: dict[str, Any] = {}
    try:
        for size in sizes:
            run_prefix = f"{prefix}-{size}"
            clock = SystemClock()
            market = SimulatedMarket(MarketSettings(seed=7, drift_bps=0), clock,
                                     state=RedisSimState(client, prefix=run_prefix))
            router = Router(list(market.venues.values()), clock)
            book = RedisTriggerBook(client, prefix=run_prefix)
            quotes, _ = router.quotes(sol, usdc, 10**9)
            now_price = price(10**9, sol, quotes[0].amount_out, usdc)
            rng = random.Random(size)

            def limit_order(level: Decimal, rng: random.Random = rng) -> Order:
                amount = rng.randrange(10**8, 10**10)
                return Order.create(client_id="bench", token_in=sol, token_out=usdc, amount_in=amount,
                                    slippage_bps=50, order_type=OrderType.LIMIT,
                                    limit_price=format(level.quantize(Decimal("0.000001")), "f"))

            pipe = client.pipeline(transaction=False)
            for i in range(size):  # waiting on other levels: 1.5x to 10x the price
                order = limit_order(now_price * Decimal(str(round(rng.uniform(1.5, 10), 6))))
                pipe.zadd(book.key(sol, usdc), {book.member(order, 2): float(order.limit_price or 0)})
                if i % 5000 == 4999:
                    pipe.execute()
            pipe.execute()
            client.set(book.ready_key, "1", ex=3600)
            table, queue = _Table(), _Queue()
            matcher = Matcher(table, book, router, queue, clock)  # type: ignore[arg-type]
            counter = CallCounter()
            timings: list[float] = []
            with counter.installed():
                for _ in range(events):
                    book.add(limit_order(now_price * Decimal("0.99")), 2)  # one order the event fills
                    event = MarketEvent("swap", ((sol.mint, usdc.mint),), market.block_height(),
                                        round(clock.now() * 1000))
                    started = time.perf_counter()
                    result = matcher.handle([event])
                    timings.append((time.perf_counter() - started) * 1000)
                    assert len(result.triggered) == 1, result
            redis_commands = sum(counter.snapshot()["redis"].values())
            results[str(size)] = {
                "waiting": size,
                "events": events,
                "medianMs": round(statistics.median(timings), 3),
                "p95Ms": round(pct(timings, 95), 3),
                "redisCommandsPerEvent": round(redis_commands / events, 2),
                "candidatesPerEvent": 1,
                "bookEntries": int(client.zcard(book.key(sol, usdc))),
            }
            for key in client.scan_iter(match=f"{run_prefix}:*", count=1000):
                client.delete(key)
    finally:
        client.close()
    small, large = (results[str(s)] for s in (min(sizes), max(sizes)))
    results["ratio"] = round(large["medianMs"] / small["medianMs"], 2)
    return results


def run(redis_url: str | None = None) -> dict[str, Any]:
    """Both measures; ``redis_url`` a Redis server that answers, or None (the stack embeds one)."""
    suffix = f"{time.time_ns() % 10**8}"
    prefix = f"bench-limit-{suffix}"
    try:
        latency = trigger_latency(redis_url=redis_url, prefix=prefix)
    finally:
        delete_keys(redis_url, prefix)
    return {"triggerLatency": latency,
            "matcherCost": matcher_cost(redis_url=redis_url, prefix=f"bench-matcher-{suffix}")}


