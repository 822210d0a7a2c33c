"""``make bench``: throughput, latency, CPU, calls and cost per order, cold start, each with its goal.

    python -m bench.run                       # each scenario on a fresh `order-engine run`
    python -m bench.run --only zero --orders 300
    python -m bench.run --baseline ../other-checkout   # the same on another checkout: before/after

Prints a markdown table and writes the figures as JSON under ``bench/results/``. The stack runs
as ``make run`` runs it, one process per part (``bench.procstack``): CPU is read from ``/proc`` per
process, and each part counts its own AWS calls and Redis commands; the clients run in a process
of their own, on the same machine.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .counters import POLLER_OPERATIONS, STREAM_POLLER_OPERATIONS
from .load import LoadResult, post_only, run_load

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KEY = "bench-key"
ORDER = {"type": "market", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.5", "slippageBps": 100}
LAMBDA_MEMORY_GB = 0.25  # .chalice/config.json: lambda_memory_size 256
WORKER_CONCURRENCY = 10  # the event source mapping's maximum concurrency
BATCH_SIZE = 10  # records per invocation, processed concurrently
STATUSES_PER_ORDER = 5  # pending, routing, building, submitted, confirmed

# AWS list prices, us-east-1, as published in November 2026 (USD).
PRICES = {
    "date": "2026-11",
    "api_gateway_rest_per_million": 3.50,
    "api_gateway_ws_messages_per_million": 1.00,
    "sqs_requests_per_million": 0.40,
    "dynamodb_write_units_per_million": 0.625,
    "dynamodb_read_units_per_million": 0.125,
    "lambda_requests_per_million": 0.20,
    "lambda_gb_second": 0.0000166667,
}

# Issue 16's goals for the local stack on a 2-core machine.
GOALS = {
    "postP50Ms": 30, "postP99Ms": 250,  # during the zero-latency burst
    "ordersPerMinute": 1000,  # zero venue latency
    "cpuSecondsPerOrder": 0.12,  # every process of the stack
    "coldStartSeconds": 2.0,  # `make run` to a healthy /health
    "deliveryP95Ms": 250,  # status -> WebSocket at a steady 120 orders/min
}

ZERO_LATENCY_ENV = {"QUOTE_LATENCY_MS": "0,0", "SWAP_LATENCY_MS": "0,0", "CONFIRM_POLL_MS": "5"}
REALISTIC_ENV = {"QUOTE_LATENCY_MS": "20,80", "SWAP_LATENCY_MS": "2000,3000", "CONFIRM_POLL_MS": "200"}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def _stack_env(extra: dict[str, str]) -> dict[str, str]:
    return {"API_KEYS": f"{KEY}:bench", "RATE_LIMIT_PER_MIN": "1000000", "LOG_LEVEL": "WARNING", **extra}


def bench_prefix() -> str:
    """Each run's keys under a prefix of its own: a fresh simulated cluster, deleted afterwards."""
    return f"bench-{uuid.uuid4().hex[:10]}"


def delete_keys(redis_url: str | None, prefix: str) -> None:
    if redis_url is None:
        return  # the embedded Redis went away with the stack
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
    finally:
        client.close()


def _redis_url() -> str | None:
    """A real Redis when one answers (``REDIS_URL`` or the default port); else the stack embeds one."""
    from devstack.redis_server import DEFAULT_REDIS_URL, redis_answers

    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    return url if redis_answers(url) else None


def _processing_seconds(rest: str, order_ids: list[str]) -> list[float]:
    """Worker time per order from its persisted history: first ``routing`` to terminal."""
    import httpx

    out = []
    with httpx.Client(base_url=rest, headers={"x-api-key": KEY}, timeout=30) as http:
        for order_id in order_ids:
            history = http.get(f"/api/orders/{order_id}").json()["history"]
            times = {e["status"]: datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp()
                     for e in history}
            end = times.get("confirmed") or times.get("failed")
            if "routing" in times and end:
                out.append(end - times["routing"])
    return out


def _order_size_bytes(rest: str, order_id: str) -> int:
    import httpx

    resp = httpx.get(f"{rest}/api/orders/{order_id}", headers={"x-api-key": KEY}, timeout=30)
    return len(resp.content)


def scenario(name: str, env: dict[str, str], orders: int, senders: int, counted: bool,
             rest: str | None = None, ws: str | None = None, rate: float | None = None,
             baseline: Path | None = None, intake_alone: bool = False) -> dict[str, Any]:
    """One run on a fresh stack (``order-engine run``, one process per part; or ``baseline``'s):
    a warm-up, then ``orders`` measured, with each process's CPU and each part's calls; with
    ``intake_alone``, then as many POSTs again with the functions' process paused."""
    from .procstack import ProcessStack, cpu_seconds, difference, external_redis_pid

    print(f"-- {name}: {orders} orders, {senders} concurrent clients", flush=True)
    stack = None
    prefix, redis_url = bench_prefix(), _redis_url()
    redis_pid = external_redis_pid() if redis_url else None
    cold = None
    if rest is None or ws is None:
        stack = ProcessStack(_stack_env({**env, "REDIS_PREFIX": prefix}), baseline=baseline, count=counted)
        stack.start()
        rest, ws, cold = stack.urls["rest"], stack.urls["ws"], stack.cold_start_seconds
    calls = cpu = None
    redis_cpu = None
    alone = None
    try:
        # The clients run in a process of their own: their CPU is not the engine's.
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as clients:
            clients.submit(run_load, rest, ws, KEY, min(10, orders), min(senders, 10), ORDER).result()  # warm-up
            time.sleep(1)  # the warm-up's sockets close and their $disconnect runs before counting starts
            counts_before = stack.counts() if stack else None
            cpu_before = stack.cpu() if stack else {}
            redis_before = cpu_seconds(redis_pid) if redis_pid else None
            result = clients.submit(run_load, rest, ws, KEY, orders, senders, ORDER, rate_per_second=rate).result()
            time.sleep(1)  # the last acknowledgements and $disconnects are part of the run
            if stack:
                cpu_after = stack.cpu()
                cpu = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 3) for k in cpu_after}
                counts_after = stack.counts()
                if counts_after is not None and counts_before is not None:
                    calls = difference(counts_after, counts_before)
            if redis_pid and redis_before is not None:
                after = cpu_seconds(redis_pid)
                redis_cpu = round(after - redis_before, 3) if after is not None else None
            alone = _intake_alone(stack, clients, orders, senders) if intake_alone and stack else None
        ids = [t.order_id for t in result.traces if t.final]
        processing = _processing_seconds(rest, ids[: min(len(ids), 100)])
        size = _order_size_bytes(rest, ids[0]) if ids else 0
    finally:
        if stack:
            stack.stop()
            delete_keys(redis_url, prefix)
    out = summarise(name, result, calls, processing, size)
    if cpu is not None:
        total = sum(cpu.values())
        confirmed = max(out["confirmed"], 1)
        out["cpuSeconds"] = dict(sorted(cpu.items(), key=lambda kv: -kv[1]))
        out["cpuSecondsTotal"] = round(total, 2)
        out["cpuSecondsPerOrder"] = round(total / confirmed, 4)
        out["cpuPerProcessPerOrderMs"] = {k: round(v / confirmed * 1000, 1) for k, v in out["cpuSeconds"].items()}
        out["coresBusy"] = round(total / max(out["elapsedSeconds"], 1e-9), 2)
        if redis_cpu is not None:
            out["externalRedisCpuSeconds"] = redis_cpu
            out["externalRedisCpuPerOrderMs"] = round(redis_cpu / confirmed * 1000, 2)
    if cold is not None:
        out["coldStartSeconds"] = round(cold, 2)
    if alone is not None:
        out["intakeAlone"] = alone
    return out


def _intake_alone(stack: Any, clients: Any, orders: int, senders: int) -> dict[str, Any] | None:
    """The same clients' POSTs with nothing executing: the functions' process (pollers, workers,
    fan-out) stopped with SIGSTOP for the time, continued after. What the POSTs cost then is
    intake's own; compared with the burst's, it says how much intake waits behind execution."""
    pid = stack.pids.get("functions")
    if pid is None:
        return None  # another checkout's stack, whose parts are not known
    cpu_before = stack.cpu()
    os.kill(pid, signal.SIGSTOP)
    try:
        seconds, errors = clients.submit(post_only, stack.urls["rest"], KEY, orders, senders, ORDER).result()
    finally:
        os.kill(pid, signal.SIGCONT)
    cpu_after = stack.cpu()
    posts = [s * 1000 for s in seconds]
    n = max(len(posts), 1)
    per_post = {k: round((cpu_after[k] - cpu_before.get(k, 0.0)) / n * 1000, 2) for k in cpu_after}
    return {"posts": len(posts), "errors": errors[:5],
            "postMs": {p: round(pct(posts, q), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
            "cpuPerPostMs": dict(sorted(((k, v) for k, v in per_post.items() if v), key=lambda kv: -kv[1])),
            "cpuPerPostMsTotal": round(sum(per_post.values()), 2)}


def summarise(name: str, result: LoadResult, calls: dict[str, Any] | None, processing: list[float],
              item_size: int) -> dict[str, Any]:
    traces = result.traces
    done = [t for t in traces if t.final]
    confirmed = sum(1 for t in done if t.final == "confirmed")
    elapsed = max(result.finished - result.started, 1e-9)
    latencies = [t.latency for t in done if t.latency is not None]
    posts = [t.post_seconds * 1000 for t in traces]
    delivery = [d for t in traces for d in t.delivery_ms]
    out: dict[str, Any] = {
        "scenario": name,
        "orders": len(traces),
        "confirmed": confirmed,
        "failed": len(done) - confirmed,
        "errors": result.errors,
        "elapsedSeconds": round(elapsed, 2),
        "ordersPerMinute": round(confirmed / elapsed * 60, 1),  # confirmed ones only
        "orderLatencyMeanSeconds": round(statistics.fmean(latencies), 3) if latencies else None,
        "orderLatencyP50Seconds": round(pct(latencies, 50), 3) if latencies else None,
        "orderLatencyP95Seconds": round(pct(latencies, 95), 3) if latencies else None,
        "postMs": {p: round(pct(posts, q), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        "deliveryMs": {p: round(pct(delivery, q), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        "deliverySamples": len(delivery),
        "processingMeanSeconds": round(statistics.fmean(processing), 3) if processing else None,
        "processingP95Seconds": round(pct(processing, 95), 3) if processing else None,
        "orderItemBytes": item_size,
    }
    if latencies:
        # Little's law: orders in flight = throughput x time in system.
        out["inFlightObserved"] = round(len(done) / elapsed * statistics.fmean(latencies), 1)
        bound = WORKER_CONCURRENCY / statistics.fmean(latencies) * 60
        out["concurrencyBoundPerMinute"] = round(bound, 1)
        out["ratioToConcurrencyBound"] = round(out["ordersPerMinute"] / bound, 2)
    if processing:
        # Our own bound: every record of every batch in flight at once, each taking the worker's
        # measured processing time (routing -> terminal), for as many orders as there are.
        cap = min(WORKER_CONCURRENCY * BATCH_SIZE, len(traces))
        own = cap / statistics.fmean(processing) * 60
        out["ownBoundPerMinute"] = round(own, 1)
        out["ratioToOwnBound"] = round(out["ordersPerMinute"] / own, 2)
    if calls is not None and traces:
        out["calls"] = per_order_calls(calls, len(traces))
    return out


def per_order_calls(calls: dict[str, Any], n: int) -> dict[str, Any]:
    aws: Counter[str] = Counter()
    poller: Counter[str] = Counter()
    streams: Counter[str] = Counter()
    for (service, op), count in calls["aws"].items():
        if (service, op) in STREAM_POLLER_OPERATIONS:
            streams[f"{service}:{op}"] += count
        elif (service, op) in POLLER_OPERATIONS:
            poller[f"{service}:{op}"] += count
        else:
            aws[f"{service}:{op}"] += count
    return {
        "aws": {k: round(v / n, 2) for k, v in sorted(aws.items())},
        "awsTotal": round(sum(aws.values()) / n, 2),
        "pollerSqs": {k: round(v / n, 2) for k, v in sorted(poller.items())},
        "pollerStreams": {k: round(v / n, 2) for k, v in sorted(streams.items())},
        # every call the order causes: ours, and the event source pollers' (SQS and stream reads)
        "awsTotalWithPollers": round((sum(aws.values()) + sum(poller.values()) + sum(streams.values())) / n, 2),
        "redis": {k: round(v / n, 2) for k, v in sorted(calls["redis"].items())},
        "redisTotal": round(sum(calls["redis"].values()) / n, 2),
        "redisConflictsPerOrder": round(calls.get("redisConflicts", 0) / n, 3),
        # what the run's schedules (market tick, expiry sweep) cost in all, not per order
        "scheduledAwsInRun": calls.get("scheduledAws", {}),
        "scheduledRedisInRun": sum(calls.get("scheduledRedis", {}).values()),
        "pushesPerOrder": round(calls["aws"].get(("apigatewaymanagementapi", "PostToConnection"), 0) / n, 2),
        "recordsPerInvocation": round(calls["received"] / max(calls["nonEmptyReceives"], 1), 2),
        "streamRecordsPerOrder": round(calls["streamRecords"] / n, 2),
        "fanOutInvocationsPerOrder": round(calls["nonEmptyStreamReads"] / n, 2),
    }


def cost(summary: dict[str, Any], api_handler_ms: float) -> dict[str, Any]:
    """Per million orders at list prices, from the measured calls and durations.

    ``api_handler_ms`` stands for the REST and ``$default`` handlers' duration: the POST latency
    under steady load (under saturation it would be the local stack's queueing, not Lambda's).
    """
    calls = summary["calls"]
    aws = calls["aws"]
    million = 1_000_000

    def n(op: str) -> float:
        return float(aws.get(f"dynamodb:{op}", 0.0))

    kb = max(1, math.ceil(summary["orderItemBytes"] / 1024))
    # Orders-table writes (every UpdateItem, one PutItem per order) are written twice, table and
    # byClient index (projection ALL); the rest are small connections-table writes.
    order_writes = n("UpdateItem") + min(n("PutItem"), 1.0)
    other_writes = n("PutItem") + n("DeleteItem") - min(n("PutItem"), 1.0)
    write_units = order_writes * kb * 2 + other_writes
    reads = n("GetItem") + n("Query")
    sqs = sum(v for k, v in aws.items() if k.startswith("sqs:")) + sum(calls["pollerSqs"].values())
    ws_messages = calls["pushesPerOrder"] + 1  # the pushes, and the client's subscribe
    records = calls["recordsPerInvocation"]
    # REST handler, WebSocket $default, worker, and the fan-out (one invocation per batch of stream
    # records; reading the stream is free for Lambda)
    lambda_requests = 1 + 1 + 1 / records + calls.get("fanOutInvocationsPerOrder", 0.0)
    mean = summary.get("processingMeanSeconds") or 0.0
    # A batch's invocation lasts as long as its slowest record.
    slowest = (summary.get("processingP95Seconds") or mean) if records >= 2 else mean
    gb_s_batched = LAMBDA_MEMORY_GB * slowest / records
    gb_s_single = LAMBDA_MEMORY_GB * mean
    gb_s_api = LAMBDA_MEMORY_GB * 2 * api_handler_ms / 1000
    p = PRICES
    lines = {
        "apiGatewayRest": p["api_gateway_rest_per_million"],
        "apiGatewayWebSocket": ws_messages * p["api_gateway_ws_messages_per_million"],
        "sqs": sqs * p["sqs_requests_per_million"],
        "dynamodbWrites": write_units * p["dynamodb_write_units_per_million"],
        "dynamodbReads": reads * p["dynamodb_read_units_per_million"],
        "lambdaRequests": lambda_requests * p["lambda_requests_per_million"],
        "lambdaCompute": (gb_s_batched + gb_s_api) * million * p["lambda_gb_second"],
    }
    return {
        "usd": {k: round(v, 2) for k, v in lines.items()},
        "totalUsd": round(sum(lines.values()), 2),
        "workerGbSecondsPerOrderBatched": round(gb_s_batched, 5),
        "workerGbSecondsPerOrderOnePerInvocation": round(gb_s_single, 5),
        "lambdaComputeUsdIfOnePerInvocation": round((gb_s_single + gb_s_api) * million * p["lambda_gb_second"], 2),
        "assumptions": f"order item ~{kb} KB: {kb} WRU per write, twice with the byClient index; reads "
                       f"strongly consistent under 4 KB; API handlers {api_handler_ms:.0f} ms each; "
                       f"{LAMBDA_MEMORY_GB * 1024:.0f} MB functions; SQS includes the local poller's 1 s "
                       f"long polls (Lambda's pollers wait 20 s); list prices as of {p['date']}, unverified "
                       f"from this network",
    }


def cold_start(root: Path = ROOT, runs: int = 5) -> dict[str, Any]:
    code = ("import time; t = time.perf_counter(); import app; "
            "print((time.perf_counter() - t) * 1000)")
    env = {**os.environ, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "STAGE": "dev"}
    subprocess.run([sys.executable, "-c", "import app"], cwd=root, env=env, check=True)  # bytecode cached
    times = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True,
                              capture_output=True, text=True)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return {"importMsMedian": round(statistics.median(times), 1), "importMsRuns": [round(t, 1) for t in times],
            **package_size()}


def package_size() -> dict[str, Any]:
    """Our code zipped, and with the third-party packages Lambda needs (boto3 is in the runtime;
    Chalice adds only its small ``chalice/app.py``, not counted)."""
    deps = ["pydantic", "pydantic_core", "redis", "aws-lambda-powertools", "annotated-types",
            "typing-extensions", "typing-inspection", "jmespath"]
    with tempfile.TemporaryDirectory() as tmp:
        ours = Path(tmp) / "ours.zip"
        with zipfile.ZipFile(ours, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(ROOT / "app.py", "app.py")
            for path in sorted((ROOT / "chalicelib").rglob("*.py")):
                z.write(path, path.relative_to(ROOT))
        full = Path(tmp) / "full.zip"
        with zipfile.ZipFile(full, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(ours, "ours.zip")
            for dist_name in deps:
                try:
                    dist = metadata.distribution(dist_name)
                except metadata.PackageNotFoundError:
                    continue
                for f in dist.files or []:
                    located = Path(str(dist.locate_file(f)))
                    if located.is_file() and "__pycache__" not in located.parts and located.suffix != ".pyc":
                        z.write(located, f"deps/{f}")
        return {"codeZipKb": round(ours.stat().st_size / 1024, 1),
                "packageZipMb": round(full.stat().st_size / 1024 / 1024, 2)}


def _verdict(value: float | None, goal: float, at_most: bool = True) -> str:
    if value is None:
        return "—"
    met = value <= goal if at_most else value >= goal
    return "met" if met else "**missed**"


def table(results: dict[str, Any]) -> str:
    z, r, st = results.get("zeroLatency"), results.get("realistic"), results.get("steady")
    g = GOALS
    lines = [f"Machine: {results['machine']}  ", f"Run: {results['date']}", ""]
    if z:
        cold = z.get("coldStartSeconds")
        lines += [
            "| goal (issue 16) | measured | goal | |",
            "|---|---|---|---|",
            f"| throughput, zero venue latency, confirmed orders/min | {z['ordersPerMinute']} | "
            f"≥ {g['ordersPerMinute']} | "
            f"{_verdict(z['ordersPerMinute'], g['ordersPerMinute'], at_most=False)} |",
            f"| POST p50 during the {z['orders']}-order burst | {z['postMs']['p50']} ms | ≤ {g['postP50Ms']} ms | "
            f"{_verdict(z['postMs']['p50'], g['postP50Ms'])} |",
            f"| POST p99 during the burst | {z['postMs']['p99']} ms | ≤ {g['postP99Ms']} ms | "
            f"{_verdict(z['postMs']['p99'], g['postP99Ms'])} |",
            f"| CPU seconds per confirmed order, every process of the stack | {z.get('cpuSecondsPerOrder', '—')} | "
            f"≤ {g['cpuSecondsPerOrder']} | {_verdict(z.get('cpuSecondsPerOrder'), g['cpuSecondsPerOrder'])} |",
            f"| cold start of the stack to a healthy /health | {cold if cold is not None else '—'} s | "
            f"≤ {g['coldStartSeconds']} s | {_verdict(cold, g['coldStartSeconds'])} |",
        ]
        if st:
            lines.append(f"| status → WebSocket p95 at a steady {st['ordersPerMinute']:.0f}/min | "
                         f"{st['deliveryMs']['p95']} ms | ≤ {g['deliveryP95Ms']} ms | "
                         f"{_verdict(st['deliveryMs']['p95'], g['deliveryP95Ms'])} |")
        lines += [
            "", "| zero venue latency burst | |", "|---|---|",
            f"| orders (confirmed / failed) | {z['orders']} ({z['confirmed']} / {z['failed']}) |",
            f"| POST p50 / p95 / p99 | {z['postMs']['p50']} / {z['postMs']['p95']} / {z['postMs']['p99']} ms |",
            f"| POST → confirmed p50 / mean | {z['orderLatencyP50Seconds']} / {z['orderLatencyMeanSeconds']} s |",
            f"| status → WebSocket p50 / p95 | {z['deliveryMs']['p50']} / {z['deliveryMs']['p95']} ms |",
            f"| cores busy (all the stack's CPU ÷ wall time) | {z.get('coresBusy', '—')} |",
        ]
        alone = z.get("intakeAlone")
        if alone:
            by_process = ", ".join(f"{k} {v}" for k, v in alone["cpuPerPostMs"].items())
            lines += [
                f"| POST p50 / p95 / p99 with execution paused (the same clients, nothing executing) | "
                f"{alone['postMs']['p50']} / {alone['postMs']['p95']} / {alone['postMs']['p99']} ms |",
                f"| CPU per POST with execution paused, every process of the stack | "
                f"{alone['cpuPerPostMsTotal']} ms ({by_process}) |",
            ]
        if "cpuPerProcessPerOrderMs" in z:
            lines += ["", "CPU per confirmed order by process (ms), zero-latency burst:", ""]
            lines += [f"- {k}: {v}" for k, v in z["cpuPerProcessPerOrderMs"].items()]
            if "externalRedisCpuPerOrderMs" in z:
                lines.append(f"- (not counted above) the machine's redis-server, shared with other users: "
                             f"{z['externalRedisCpuPerOrderMs']} ms, an upper bound")
    if r:
        lines += ["", "| realistic latency (2–3 s swaps) | |", "|---|---|",
                  f"| orders (confirmed / failed) | {r['orders']} ({r['confirmed']} / {r['failed']}) |",
                  f"| throughput, confirmed orders/min | {r['ordersPerMinute']} |",
                  f"| ratio to the 10-in-flight bound | {r.get('ratioToConcurrencyBound')} (target ≥ 0.95) |",
                  f"| POST p50 / p99 | {r['postMs']['p50']} / {r['postMs']['p99']} ms |",
                  f"| CPU seconds per confirmed order | {r.get('cpuSecondsPerOrder', '—')} |"]
    if st:
        lines += ["", f"| {st['scenario']} | |", "|---|---|",
                  f"| orders/min, mean POST → confirmed | {st['ordersPerMinute']}, {st['orderLatencyMeanSeconds']} s |",
                  f"| POST p50 / p95 / p99 | {st['postMs']['p50']} / {st['postMs']['p95']} / "
                  f"{st['postMs']['p99']} ms |",
                  f"| status → WebSocket p50 / p95 / p99 | {st['deliveryMs']['p50']} / {st['deliveryMs']['p95']} / "
                  f"{st['deliveryMs']['p99']} ms |"]
    if z and "calls" in z:
        c = z["calls"]
        lines += [
            "", "| calls per order (zero venue latency) | |", "|---|---|",
            f"| AWS calls of our code (target ≤ 12 + pushes) | {c['awsTotal']} |",
            f"| of which WebSocket pushes | {c['pushesPerOrder']} |",
            f"| the event source pollers' (SQS receive/delete, stream reads) | "
            f"{sum(c['pollerSqs'].values()):.2f} + {sum(c['pollerStreams'].values()):.2f} |",
            f"| stream records per order / fan-out invocations per order | {c['streamRecordsPerOrder']} / "
            f"{c['fanOutInvocationsPerOrder']} |",
            f"| Redis commands per order (conflicts retried) | {c['redisTotal']} ({c['redisConflictsPerOrder']}) |",
            f"| records per worker invocation | {c['recordsPerInvocation']} |",
        ]
        lines += ["", "AWS calls per order (service:operation → calls/order):", ""]
        lines += [f"- {k}: {v}" for k, v in {**c["aws"], **c["pollerSqs"], **c["pollerStreams"]}.items()]
    for key in ("zeroLatency", "realistic"):
        found = results.get(key)
        if found and "costPerMillionOrders" in found:
            lines.append(f"\nCost per million orders at list prices, {found['scenario']}: "
                         f"${found['costPerMillionOrders']['totalUsd']}")
    cs = results.get("coldStart")
    if cs:
        lines.append(f"\nImport of app.py + chalicelib in a fresh interpreter (median of 5): "
                     f"{cs['importMsMedian']} ms; "
                     f"deployment package {cs['codeZipKb']} KB of our code, {cs['packageZipMb']} MB in all.")
    one = results.get("oneOrder")
    if one:
        lines += ["", f"One market order with one subscriber, call by call ({one['awsTotal']} AWS calls; "
                      f"the socket saw {', '.join(one['messages'])}):", "",
                  "| service | operation | calls |", "|---|---|---|"]
        lines += [f"| {k.split(':')[0]} | {k.split(':')[1]} | {n} |" for k, n in one["aws"].items()]
        lines += [f"| {k.split(':')[0]} (event source poller) | {k.split(':')[1]} | {n} |"
                  for k, n in one["poller"].items()]
        lines += [f"| redis | {k} | {n} |" for k, n in sorted(one["redis"].items())]
    if "limit" in results:
        lines += ["", *limit_table(results["limit"])]
    if "sniper" in results:
        lines += ["", *sniper_table(results["sniper"])]
    if "marketEventsPublished" in z:
        lines += ["", f"Market events published by market orders while no limit order waited: "
                      f"{z['marketEventsPublished']} (zero-latency run), {r.get('marketEventsPublished')} (realistic)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=300, help="orders in the zero-latency burst")
    parser.add_argument("--realistic-orders", type=int, default=100, help="orders in the realistic run")
    parser.add_argument("--senders", type=int, default=10, help="concurrent clients")
    parser.add_argument("--steady-orders", type=int, default=60, help="orders in the paced run")
    parser.add_argument("--steady-rate", type=float, default=2.0, help="orders per second in the paced run")
    parser.add_argument("--rest", help="use a running stack's REST URL (no call counts, no CPU)")
    parser.add_argument("--ws", help="use a running stack's WebSocket URL (no call counts, no CPU)")
    parser.add_argument("--baseline", type=Path,
                        help="measure another checkout's `order-engine run` instead (a before/after on this machine)")
    parser.add_argument("--only", choices=["zero", "realistic", "steady", "limit", "sniper"], action="append",
                        help="run only these scenarios (repeatable; limit: trigger latency and the matcher's "
                             "cost per event; sniper: pool open to the first sniper submitted)")
    parser.add_argument("--no-cold-start", action="store_true")
    parser.add_argument("--no-one-order", action="store_true")
    args = parser.parse_args(argv)
    if args.only and set(args.only) <= {"limit", "sniper"}:
        return _only_waiting(set(args.only))

    import logging

    logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    counted = args.rest is None and args.baseline is None
    where = f"the checkout at {args.baseline}" if args.baseline else "this checkout"
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}; `order-engine run` of {where}; "
                   f"Redis: {'a Redis server of the machine' if _redis_url() else 'embedded (fakeredis)'}",
        "prices": PRICES,
        "goals": GOALS,
    }
    started = time.monotonic()
    only = set(args.only or ["zero", "realistic", "steady", "limit", "sniper"])
    if args.rest is None:
        runs = [("zeroLatency", "zero", "zero venue latency", ZERO_LATENCY_ENV, args.orders, None),
                ("realistic", "realistic", "realistic latency", REALISTIC_ENV, args.realistic_orders, None),
                ("steady", "steady", f"steady {args.steady_rate * 60:.0f} orders/min, realistic latency",
                 REALISTIC_ENV, args.steady_orders, args.steady_rate)]
        for key, short, title, env, orders, rate in runs:
            if short in only:
                results[key] = scenario(title, env, orders, args.senders, counted, rate=rate, baseline=args.baseline,
                                        intake_alone=key == "zeroLatency")
    else:
        results["zeroLatency"] = scenario("running stack", {}, args.orders, args.senders, False, args.rest, args.ws)
    if counted and "steady" in results:
        api_ms = results["steady"]["postMs"]["p50"]
        for key in ("zeroLatency", "realistic", "steady"):
            if key in results and "calls" in results[key]:
                results[key]["costPerMillionOrders"] = cost(results[key], api_ms)
    if counted and not args.no_one_order:
        from .one_order import measure

        results["oneOrder"] = measure()
    if "limit" in only:
        from .limit import run as limit_run

        results["limit"] = limit_run(_redis_url())
    if "sniper" in only:
        from .sniper import run as sniper_run

        results["sniper"] = sniper_run(_redis_url())
    if not args.no_cold_start:
        results["coldStart"] = cold_start(args.baseline or ROOT)
    results["benchSeconds"] = round(time.monotonic() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    label = "baseline-" if args.baseline else ""
    out = RESULTS / f"bench-{label}{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    if not args.baseline:
        (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    print()
    print(table(results))
    print(f"\n(written to {out.relative_to(ROOT)}; {results['benchSeconds']} s)")
    return 0


def _only_waiting(scenarios: set[str]) -> int:
    """``--only limit`` and/or ``--only sniper``: the orders that wait, without the load runs."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    started = time.monotonic()
    results: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                               "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
                                          f"Python {platform.python_version()}; "
                                          f"Redis: {'a Redis server' if _redis_url() else 'embedded (fakeredis)'}"}
    lines: list[str] = []
    if "limit" in scenarios:
        from .limit import run as limit_run

        results["limit"] = limit_run(_redis_url())
        lines += limit_table(results["limit"])
    if "sniper" in scenarios:
        from .sniper import run as sniper_run

        results["sniper"] = sniper_run(_redis_url())
        lines += ([""] if lines else []) + sniper_table(results["sniper"])
    results["benchSeconds"] = round(time.monotonic() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "-".join(sorted(scenarios)) + "-latest.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2, default=str))
    print()
    print("\n".join(lines))
    print(f"\n(written to bench/results/{name}; {results['benchSeconds']} s)")
    return 0


def sniper_table(sniper: dict[str, Any]) -> list[str]:
    latency = sniper["openToSubmitted"]
    before, after = latency["byPath"]["placedBeforeLaunch"], latency["byPath"]["placedAfterLaunch"]

    def figures(found: dict[str, Any]) -> str:
        return f"{found['p50Ms']} / {found['p95Ms']} ms" if found.get("samples") else "no samples"

    lines = [
        "| sniper orders | |",
        "|---|---|",
        f"| pool open → first sniper submitted, p50 / p95 ({latency.get('samples', 0)} launches, "
        f"{latency['snipersPerRound']} snipers each) | {figures(latency)} (budget p50 ≤ {latency['budgetP50Ms']} ms) |",
        f"| the same, snipers placed before the launch ({before.get('samples', 0)}) | {figures(before)} |",
        f"| the same, snipers placed after the launch, before the open ({after.get('samples', 0)}) | "
        f"{figures(after)} |",
    ]
    if latency["failures"]:
        lines.append(f"| snipers that did not reach submitted | {len(latency['failures'])}: "
                     f"{latency['failures'][0]} |")
    return lines


def limit_table(limit: dict[str, Any]) -> list[str]:
    latency, cost = limit["triggerLatency"], limit["matcherCost"]
    small, large = cost["1000"], cost["100000"]
    return [
        "| limit orders | |",
        "|---|---|",
        f"| trigger latency, market event → routing, p50 / p95 ({latency['samples']} triggers) | "
        f"{latency['p50Ms']} / {latency['p95Ms']} ms (budget p50 ≤ {latency['budgetP50Ms']} ms) |",
        f"| matcher per market event, 1,000 orders waiting elsewhere: median / p95 | {small['medianMs']} / "
        f"{small['p95Ms']} ms, {small['redisCommandsPerEvent']} Redis commands |",
        f"| the same, 100,000 orders waiting elsewhere | {large['medianMs']} / {large['p95Ms']} ms, "
        f"{large['redisCommandsPerEvent']} Redis commands |",
        f"| ratio 100,000 / 1,000 (median; target ≤ 2) | {cost['ratio']} |",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
