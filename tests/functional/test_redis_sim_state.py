"""The cluster's state port on Redis: the same contract as in memory, plus what only a shared
store has: conflicting writers, prefixes and TTLs."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.adapters.redis_sim_state import RedisSimState
from chalicelib.domain import SlippageExceededError, SwapInstruction, Transaction, get_token
from chalicelib.domain.clock import FakeClock
from chalicelib.execution.chain import ChainSettings, SimulatedChain
from chalicelib.routing.market import MarketSettings, SimulatedMarket
from chalicelib.routing.state import StateTxn

SOL, USDC = get_token("SOL"), get_token("USDC")


def test_reads_writes_and_sorted_sets_under_the_prefix(redis_client: Any, redis_prefix: str) -> None:
    state = RedisSimState(redis_client, prefix=redis_prefix)

    def body(txn: StateTxn) -> str:
        txn.watch("a", "q")
        assert txn.get("a", "b") == [None, None]
        txn.set("a", "1", 60)
        txn.zadd("q", "late", 20, 60)
        txn.zadd("q", "early", 10, 60)
        txn.zadd("q", "gone", 5, 60)
        txn.zrem("q", "gone")
        return "done"

    assert state.transaction(body) == "done"
    assert state.read(["a", "b"], ["q", "empty"]) == (["1", None], [("early", 10), None])
    assert state.transaction(lambda txn: (txn.watch("q"), txn.due("q", 15))[1]) == [("early", 10)]
    assert state.create("g", "first", 60) == "first" and state.create("g", "second", 60) == "first"
    assert redis_client.get(f"{redis_prefix}:a") == b"1"
    assert all(0 < redis_client.ttl(k) <= 60 for k in redis_client.scan_iter(match=f"{redis_prefix}:*"))


def test_a_body_that_raises_writes_nothing(redis_client: Any, redis_prefix: str) -> None:
    state = RedisSimState(redis_client, prefix=redis_prefix)

    def body(txn: StateTxn) -> None:
        txn.watch("a")
        txn.set("a", "1", 60)
        raise SlippageExceededError("no")

    with pytest.raises(SlippageExceededError):
        state.transaction(body)
    assert state.read(["a"]) == ([None], [])
    assert state.transaction(lambda txn: (txn.watch("a"), txn.get("a"))[1]) == [None]  # connection clean


def test_a_conflicting_write_runs_the_body_again_on_fresh_values(redis_client: Any, redis_prefix: str) -> None:
    # GIVEN a counter, and another writer that changes it while the first body is deciding
    state = RedisSimState(redis_client, prefix=redis_prefix)
    redis_client.set(f"{redis_prefix}:n", "1", ex=60)
    runs: list[int] = []

    def increment(txn: StateTxn) -> int:
        txn.watch("n")
        [raw] = txn.get("n")
        value = int(raw or 0)
        runs.append(value)
        if len(runs) == 1:
            redis_client.set(f"{redis_prefix}:n", "10", ex=60)  # the other writer wins the race
        txn.set("n", str(value + 1), 60)
        return value + 1

    # THEN the first attempt is refused and the second one builds on the other writer's value
    assert state.transaction(increment) == 11
    assert runs == [1, 10] and state.conflicts == 1
    assert redis_client.get(f"{redis_prefix}:n") == b"11"


def test_every_key_of_the_cluster_has_a_ttl(redis_client: Any, redis_prefix: str) -> None:
    clock = FakeClock()
    market = SimulatedMarket(MarketSettings(), clock, state=RedisSimState(redis_client, prefix=redis_prefix))
    chain = SimulatedChain(market, clock, ChainSettings(confirm_latency_ms=(5_000, 5_000)))
    quote = market.venue("raydium").quote(SOL, USDC, 10**9)
    landed = Transaction("payer", chain.get_latest_blockhash(), (SwapInstruction(quote, 0),), "landed")
    pending = Transaction("payer", chain.get_latest_blockhash(), (SwapInstruction(quote, 0),), "pending")
    chain.send_transaction(landed)
    clock.advance(3)
    chain.send_transaction(pending)
    clock.advance(3)
    assert chain.get_signature_statuses([landed.signature, pending.signature])[0] is not None
    keys = {k.decode(): redis_client.ttl(k) for k in redis_client.scan_iter(match=f"{redis_prefix}:*")}
    kinds = {k.split(":")[2] for k in keys}
    assert kinds == {"clock", "pool", "sig", "pending"}
    assert all(ttl > 0 for ttl in keys.values())
    assert keys[f"{redis_prefix}:sim:sig:{landed.signature}"] <= 86_400
    assert min(t for k, t in keys.items() if ":pool:" in k) > 29 * 86_400


def test_an_unreachable_redis_is_an_rpc_error_in_a_sentence() -> None:
    import socket

    import redis

    from chalicelib.domain import RpcError

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=5)
    state = RedisSimState(client, prefix="unused")
    with pytest.raises(RpcError) as info:
        state.read(["a"])
    client.close()
    message = info.value.message
    assert message.startswith("the simulated cluster's state (Redis) could not be read or written: ")
    assert f"127.0.0.1:{port}" in message and "ConnectionError" not in message
