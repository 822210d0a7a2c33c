"""Every AWS call and Redis command one market order costs, with one WebSocket subscriber.

    python -m bench.one_order

Starts the local stack, opens a socket, runs one order to warm everything up, then counts from
the second order's POST to its confirmation on the socket (and half a second after, for the
worker's acknowledgement). A subscription that lands while the worker moves the order costs
one more conditional write per transition it chases; the count shows whichever happened.
The event source poller's ReceiveMessage and DeleteMessageBatch are listed apart: on AWS,
Lambda makes them.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from websockets.sync.client import connect

from .counters import POLLER_OPERATIONS, CallCounter

KEY = "one-key"


def _run_one(http: httpx.Client, sock: Any) -> tuple[str, list[dict[str, Any]]]:
    order_id = http.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC",
                                                     "amount": "1.5"}).json()["orderId"]
    sock.send(json.dumps({"action": "subscribe", "orderId": order_id}))
    messages = []
    while True:
        msg = json.loads(sock.recv(timeout=30))
        messages.append(msg)
        if msg.get("orderId") == order_id and msg["type"] == "order.status" \
                and msg.get("status") in ("confirmed", "failed"):
            return order_id, messages


def measure() -> dict[str, Any]:
    from .run import _redis_url, bench_prefix, delete_keys

    counter = CallCounter()
    prefix, redis_url = bench_prefix(), _redis_url()
    env = {"API_KEYS": f"{KEY}:one", "LOG_LEVEL": "WARNING", "QUOTE_LATENCY_MS": "0", "SWAP_LATENCY_MS": "0",
           "REDIS_PREFIX": prefix}
    try:
        calls = _measure(counter, env, redis_url)
    finally:
        delete_keys(redis_url, prefix)
    return calls


def _measure(counter: CallCounter, env: dict[str, str], redis_url: str | None) -> dict[str, Any]:
    from devstack.stack import DevStack

    with counter.installed(), DevStack(rest_port=0, ws_port=0, env=env, redis_url=redis_url) as stack:
        rest, ws = stack.urls["rest"], stack.urls["ws"]
        with connect(f"{ws}/?{urlencode({'apiKey': KEY})}") as sock, \
                httpx.Client(base_url=rest, headers={"x-api-key": KEY}) as http:
            _run_one(http, sock)  # warm: clients built, queue URL known, connection owner cached
            time.sleep(0.5)
            counter.reset()
            order_id, messages = _run_one(http, sock)
            time.sleep(0.5)  # the worker's acknowledgement (DeleteMessageBatch) follows the last push
            calls = counter.snapshot()
    ours = {f"{s}:{o}": n for (s, o), n in sorted(calls["aws"].items()) if (s, o) not in POLLER_OPERATIONS}
    poller = {f"{s}:{o}": n for (s, o), n in sorted(calls["aws"].items()) if (s, o) in POLLER_OPERATIONS}
    return {"orderId": order_id, "messages": [m["type"] + ":" + str(m.get("status", "")) for m in messages],
            "aws": ours, "awsTotal": sum(ours.values()), "poller": poller, "redis": calls["redis"]}


def main() -> int:
    result = measure()
    print(f"one market order ({result['orderId']}), one subscriber; socket saw: {', '.join(result['messages'])}")
    print("\n| service | operation | calls |\n|---|---|---|")
    for key, n in result["aws"].items():
        service, op = key.split(":")
        print(f"| {service} | {op} | {n} |")
    print(f"| **total** | | **{result['awsTotal']}** |")
    for key, n in result["poller"].items():
        service, op = key.split(":")
        print(f"| {service} (Lambda's event source poller) | {op} | {n} |")
    for cmd, n in sorted(result["redis"].items()):
        print(f"| redis | {cmd} | {n} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
