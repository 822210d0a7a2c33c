"""One simulated Solana cluster for every container: two ``Services`` ("two Lambda containers",
each with its own clients and caches) on one Redis and one moto, as workers run on AWS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.api.services import Services, set_services
from chalicelib.domain import OrderStatus, SignatureStatus, SwapInstruction, Transaction, get_token
from chalicelib.domain.clock import Clock, FakeClock
from chalicelib.execution.chain import SimulatedChain
from chalicelib.routing.market import MarketSettings, SimulatedMarket
from chalicelib.routing.state import InMemorySimState

from .conftest import (
    API_KEY_A,
    invoke_worker,
    make_services,
    make_settings,
    order_body,
    post_order,
    receive_records,
    record_for,
)

SOL, USDC = get_token("SOL"), get_token("USDC")
ONE_SOL = 10**9


class WorkerCrash(BaseException):
    """The container dies: not an Exception, so nothing in the worker catches it."""


class ChainWrapper:
    """The container's chain, with one behaviour changed; everything else is the real one."""

    def __init__(self, chain: SimulatedChain) -> None:
        self._chain = chain

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)


class CrashAfterSend(ChainWrapper):
    """Sends (after stalling ``stall_seconds`` on the fake clock, if any), then the container dies."""

    def __init__(self, chain: SimulatedChain, clock: FakeClock | None = None, stall_seconds: float = 0.0) -> None:
        super().__init__(chain)
        self._clock, self._stall = clock, stall_seconds
        self.sent: list[str] = []

    def send_transaction(self, tx: Transaction) -> str:
        if self._clock is not None:
            self._clock.advance(self._stall)
        self._chain.send_transaction(tx)
        self.sent.append(tx.signature)
        raise WorkerCrash


class SlowStatuses(ChainWrapper):
    """An RPC node whose status answers take ``seconds``: time passes between two calls."""

    def __init__(self, chain: SimulatedChain, clock: FakeClock, seconds: float) -> None:
        super().__init__(chain)
        self._clock, self._seconds = clock, seconds

    def get_signature_statuses(self, signatures: Any) -> list[SignatureStatus | None]:
        answer: list[SignatureStatus | None] = self._chain.get_signature_statuses(signatures)
        self._clock.advance(self._seconds)
        return answer


@pytest.fixture
def app_client(aws_env: None) -> Iterator[Any]:
    from chalice.test import Client

    from app import app

    with Client(app) as c:
        yield c
    set_services(None)


def two_containers(settings: Any, redis_client: Any, redis_prefix: str,
                   clock: Clock | None = None) -> tuple[Services, Services]:
    fields = {} if clock is None else {"clock": clock}
    return (make_services(settings, redis_client, redis_prefix, **fields),
            make_services(settings, redis_client, redis_prefix, **fields))


def on(container: Services) -> Services:
    """The next invocation runs in ``container``."""
    set_services(container)
    return container


def submit(client: Any) -> str:
    resp = post_order(client, order_body())
    assert resp.status_code == 202, resp.body
    return str(json.loads(resp.body)["orderId"])


def redeliver(container: Services, record: dict[str, Any]) -> dict[str, Any]:
    """Make a message in flight visible again (skipping its back-off) and receive it anew."""
    container._aws.client("sqs").change_message_visibility(
        QueueUrl=container.queue.url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0)
    [again] = receive_records(container)
    return again


def test_crash_right_after_send_then_redelivery_to_another_container_swaps_once(
        app_client: Any, settings: Any, redis_client: Any, redis_prefix: str) -> None:
    # GIVEN container A, whose worker dies right after sending the order's transaction
    a, b = two_containers(settings, redis_client, redis_prefix)
    crash = CrashAfterSend(a.chain)
    a.__dict__["chain"] = crash
    on(a)
    order_id = submit(app_client)
    [record] = receive_records(a)
    with pytest.raises(WorkerCrash):
        invoke_worker(app_client, [record])
    [signature] = crash.sent
    # WHEN SQS redelivers the order to container B, which never saw the transaction itself
    on(b)
    assert invoke_worker(app_client, [record_for(order_id, 2)]) == {"batchItemFailures": []}
    # THEN B reconciled A's transaction: one swap in the one cluster, the order confirmed with it
    order = b.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED
    assert order.tx_hash == order.signature == signature
    assert [e.status.value for e in order.history] == ["pending", "routing", "building", "submitted", "confirmed"]
    # AND any container, even one that took no part, sees that one swap and its fill
    observer = make_services(settings, redis_client, redis_prefix)
    assert a.chain.executed_swaps() == b.chain.executed_swaps() == observer.chain.executed_swaps() == 1
    [status] = observer.chain.get_signature_statuses([signature])
    assert status is not None and [f.amount_out for f in status.fills] == [order.amount_out]


def test_the_same_quote_asked_of_two_containers_is_identical(
        app_client: Any, settings: Any, redis_client: Any, redis_prefix: str) -> None:
    clock = FakeClock()
    a, b = two_containers(settings, redis_client, redis_prefix, clock)

    def quotes_over_rest(container: Services) -> Any:
        on(container)
        resp = app_client.http.get("/api/quotes?tokenIn=SOL&tokenOut=USDC&amount=25",
                                   headers={"x-api-key": API_KEY_A})
        assert resp.status_code == 200
        return json.loads(resp.body)

    before = a.router.quotes(SOL, USDC, 25 * ONE_SOL)
    assert b.router.quotes(SOL, USDC, 25 * ONE_SOL) == before
    assert quotes_over_rest(a) == quotes_over_rest(b)
    # WHEN a swap lands through A's chain, B prices the moved pool exactly as A does
    quote = before[0][0]
    tx = Transaction("payer", a.chain.get_latest_blockhash(), (SwapInstruction(quote, 0),), "move")
    a.chain.send_transaction(tx)
    assert b.chain.get_signature_statuses([tx.signature])[0] is not None
    after = b.router.quotes(SOL, USDC, 25 * ONE_SOL)
    assert after == a.router.quotes(SOL, USDC, 25 * ONE_SOL) and after != before
    assert quotes_over_rest(a) == quotes_over_rest(b)


def test_twenty_concurrent_swaps_split_between_two_containers_apply_as_one_by_one(
        settings: Any, redis_client: Any, redis_prefix: str, aws_env: None) -> None:
    # GIVEN two containers on one cluster, the clock still (no market tick), and 20 swaps:
    # 10 of 250 SOL into the Raydium SOL/USDC pool, 10 of 30,000 USDC into Meteora's
    clock = FakeClock()
    a, b = two_containers(settings, redis_client, redis_prefix, clock)
    raydium_pool = a.market.venue("raydium").spec_for(SOL, USDC).pool_id
    meteora_pool = a.market.venue("meteora").spec_for(SOL, USDC).pool_id
    swaps = [("raydium", SOL, USDC, 250 * ONE_SOL) if i % 2 else ("meteora", USDC, SOL, 30_000 * 10**6)
             for i in range(20)]
    for container in (a, b):
        container.warm()
    start = threading.Barrier(len(swaps))
    statuses: list[SignatureStatus | None] = [None] * len(swaps)
    errors: list[BaseException] = []

    def swap(i: int) -> None:
        container = a if i < len(swaps) // 2 else b  # each container takes both kinds
        venue, token_in, token_out, amount = swaps[i]
        try:
            quote = container.market.venue(venue).quote(token_in, token_out, amount)
            tx = Transaction("payer", container.chain.get_latest_blockhash(), (SwapInstruction(quote, 0),),
                             f"swap-{i}")
            start.wait(timeout=30)
            container.chain.send_transaction(tx)
            deadline = time.monotonic() + 60
            while statuses[i] is None and time.monotonic() < deadline:
                [statuses[i]] = container.chain.get_signature_statuses([tx.signature])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=swap, args=(i,)) for i in range(len(swaps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and all(s is not None and s.err is None and len(s.fills) == 1 for s in statuses)
    assert a.chain.executed_swaps() == 20

    # THEN each pool is exactly where the same swaps applied one by one leave it, fees included
    replay = SimulatedMarket(MarketSettings(seed=settings.market_seed), FakeClock(), state=InMemorySimState())
    replay.genesis_ms()
    expected_outs: dict[str, list[int]] = {raydium_pool: [], meteora_pool: []}
    for venue, token_in, token_out, amount in swaps:
        fill = replay.venue(venue).swap(replay.venue(venue).quote(token_in, token_out, amount), 0)
        expected_outs[fill.pool_id].append(fill.amount_out)
    for pool_id in (raydium_pool, meteora_pool):
        assert a.market.encode(a.market.pool(pool_id)) == replay.encode(replay.pool(pool_id))
        assert b.market.encode(b.market.pool(pool_id)) == replay.encode(replay.pool(pool_id))
        fills = [f for s in statuses if s is not None for f in s.fills if f.pool_id == pool_id]
        assert sorted(f.amount_out for f in fills) == sorted(expected_outs[pool_id])
        pool = a.market.pool(pool_id)
        assert sum(f.fee for f in fills) == pool.fees_x + pool.fees_y  # type: ignore[attr-defined]
    for pool_id in set(a.market.specs) - {raydium_pool, meteora_pool}:  # nothing else moved
        assert a.market.encode(a.market.pool(pool_id)) == replay.encode(replay.pool(pool_id))


def test_redelivery_at_the_last_valid_height_confirms_and_never_fails_the_order(
        app_client: Any, redis_client: Any, redis_prefix: str) -> None:
    # GIVEN container A, which builds a transaction at height h (valid to h+150), stalls until
    # h+145, sends it (it lands 2 s = 5 slots later, at h+150: the last valid height) and dies
    clock = FakeClock()
    a, b = two_containers(make_settings(swap_latency_ms=(2000, 2000), confirm_poll_ms=100),
                          redis_client, redis_prefix, clock)
    crash = CrashAfterSend(a.chain, clock, stall_seconds=145 * 0.4)
    a.__dict__["chain"] = crash
    on(a)
    order_id = submit(app_client)
    [record] = receive_records(a)
    with pytest.raises(WorkerCrash):
        invoke_worker(app_client, [record])
    [signature] = crash.sent
    # WHEN container B gets the redelivery at h+147, on an RPC node whose status answers take
    # two slots (so a status read as unknown is followed by a height above the last valid one)
    clock.advance(1.1)
    b.__dict__["chain"] = SlowStatuses(b.chain, clock, 0.8)
    on(b)
    assert invoke_worker(app_client, [redeliver(b, record)]) == {"batchItemFailures": []}
    # THEN the order is confirmed with A's transaction; it was never failed
    order = b.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED and order.tx_hash == signature
    assert "failed" not in [e.status.value for e in order.history]
    assert order.last_valid_block_height is not None
    assert order.history[-1].data["slot"] == order.last_valid_block_height
    assert b.chain.executed_swaps() == 1


def test_a_transaction_that_expired_unseen_is_rebuilt_by_another_container(
        app_client: Any, redis_client: Any, redis_prefix: str) -> None:
    # GIVEN container A, whose transaction reaches the cluster too late to land (due at h+151,
    # valid to h+150), and which dies right after sending it
    clock = FakeClock()
    a, b = two_containers(make_settings(swap_latency_ms=(2400, 2400), confirm_poll_ms=100),
                          redis_client, redis_prefix, clock)
    crash = CrashAfterSend(a.chain, clock, stall_seconds=145 * 0.4)
    a.__dict__["chain"] = crash
    on(a)
    order_id = submit(app_client)
    [record] = receive_records(a)
    with pytest.raises(WorkerCrash):
        invoke_worker(app_client, [record])
    [expired] = crash.sent
    # WHEN container B gets the redelivery once the last valid height has passed
    clock.advance(4)
    on(b)
    second = redeliver(b, record)
    assert invoke_worker(app_client, [second]) == {"batchItemFailures": [{"itemIdentifier": second["messageId"]}]}
    # THEN the order went back to pending to be rebuilt, not failed, and nothing swapped
    order = b.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.PENDING
    assert order.history[-1].data["expiredSignature"] == expired
    assert b.chain.executed_swaps() == 0
    # AND the retry lands a new transaction, once; A's never lands
    assert invoke_worker(app_client, [redeliver(b, second)]) == {"batchItemFailures": []}
    order = b.orders.get(order_id)
    assert order is not None and order.status is OrderStatus.CONFIRMED and order.tx_hash != expired
    assert [e.status.value for e in order.history] == [
        "pending", "routing", "building", "submitted", "pending", "routing", "building", "submitted", "confirmed"]
    clock.advance(120)
    assert a.chain.get_signature_statuses([expired]) == [None]
    assert a.chain.executed_swaps() == b.chain.executed_swaps() == 1
