"""The executor with fakes: the lifecycle, error classes, and at-most-once under redelivery."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import ConfirmationPendingError, Order, OrderStatus, QuoteTimeoutError, RpcError, get_token
from chalicelib.domain.clock import FakeClock
from chalicelib.execution.chain import ChainSettings, SimulatedChain, Transaction
from chalicelib.execution.executor import Executor, OutcomeKind
from chalicelib.execution.ports import StaleOrderError
from chalicelib.routing.market import MarketSettings, SimulatedMarket
from chalicelib.routing.router import Router

from .fakes import InMemoryOrderStore

SOL, USDC = get_token("SOL"), get_token("USDC")


class Crash(BaseException):
    pass


class World:
    def __init__(self, **chain: Any) -> None:
        self.clock = FakeClock()
        self.market = SimulatedMarket(MarketSettings(seed=11), self.clock)
        self.chain = SimulatedChain(self.market, self.clock, ChainSettings(seed=11, **chain))
        self.store = InMemoryOrderStore()
        self.terminal: list[str] = []
        self.executor = Executor(self.store, Router(list(self.market.venues.values()), self.clock),
                                 self.chain, self.clock, confirm_poll_seconds=0.1,
                                 on_terminal=lambda o: self.terminal.append(o.order_id))

    def order(self, amount: int = 1_500_000_000, slippage_bps: int = 50) -> Order:
        order = Order.create(client_id="c", token_in=SOL, token_out=USDC, amount_in=amount, slippage_bps=slippage_bps)
        self.store.create(order)
        return order

    def stored(self, order_id: str) -> Order:
        order = self.store.get(order_id)
        assert order is not None
        return order


def venues_time_out(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def timeout(*args: Any, **kwargs: Any) -> Any:
        raise QuoteTimeoutError("venue did not answer in time")

    for venue in w.market.venues.values():
        monkeypatch.setattr(venue, "quote", timeout)


def test_happy_path_reaches_confirmed_with_every_event() -> None:
    w = World(confirm_latency_ms=(2000, 3000))
    order = w.order()
    outcome = w.executor.execute(order.order_id)
    assert outcome.kind is OutcomeKind.DONE
    final = w.stored(order.order_id)
    assert final.status is OrderStatus.CONFIRMED
    assert [(e.seq, e.status.value) for e in final.history] == [
        (1, "pending"), (2, "routing"), (3, "building"), (4, "submitted"), (5, "confirmed")]
    data = {e.status.value: e.data for e in final.history}
    assert {q["venue"] for q in data["routing"]["quotes"]} == {"raydium", "meteora"}
    assert data["building"]["wrapSol"] is True
    assert data["submitted"]["signature"] == final.signature == final.tx_hash
    assert final.amount_out is not None and final.min_amount_out is not None
    assert final.amount_out >= final.min_amount_out
    assert w.chain.executed_swaps() == 1
    assert w.terminal == [order.order_id]


def test_slippage_exceeded_fails_permanently_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    order = w.order()
    for venue in w.market.venues.values():
        real = venue.quote

        def inflated(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            q = _real(*args, **kwargs)
            return type(q)(**{**q.__dict__, "amount_out": q.amount_out * 11 // 10})

        monkeypatch.setattr(venue, "quote", inflated)
    outcome = w.executor.execute(order.order_id)
    final = w.stored(order.order_id)
    assert outcome.kind is OutcomeKind.DONE and final.status is OrderStatus.FAILED
    assert final.error is not None and final.error["code"] == "slippage_exceeded"
    assert final.error["retryable"] is False
    assert w.chain.executed_swaps() == 0


def test_venue_timeout_is_transient_and_backs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    order = w.order()
    venues_time_out(w, monkeypatch)
    first = w.executor.execute(order.order_id, receive_count=1)
    second = w.executor.execute(order.order_id, receive_count=2)
    third = w.executor.execute(order.order_id, receive_count=3)
    assert (first.kind, first.delay_seconds) == (OutcomeKind.RETRY, 2)
    assert (second.kind, second.delay_seconds) == (OutcomeKind.RETRY, 4)
    assert third.kind is OutcomeKind.DONE
    final = w.stored(order.order_id)
    assert final.status is OrderStatus.FAILED
    assert final.error is not None and final.error["retryable"] is True and final.error["attempt"] == 3


def test_duplicate_invocation_after_submit_swaps_once_and_reconciles(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    order = w.order()
    real_send = w.chain.send_transaction

    def send_then_die(tx: Transaction) -> str:
        real_send(tx)
        raise Crash

    monkeypatch.setattr(w.chain, "send_transaction", send_then_die)
    with pytest.raises(Crash):
        w.executor.execute(order.order_id, 1)
    assert w.stored(order.order_id).status is OrderStatus.SUBMITTED
    monkeypatch.setattr(w.chain, "send_transaction", real_send)
    outcome = w.executor.execute(order.order_id, 2)
    assert outcome.kind is OutcomeKind.DONE
    assert w.stored(order.order_id).status is OrderStatus.CONFIRMED
    assert w.chain.executed_swaps() == 1
    again = w.executor.execute(order.order_id, 3)
    assert again.kind is OutcomeKind.IGNORED and w.chain.executed_swaps() == 1


def test_crash_before_send_resends_the_same_signed_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    order = w.order()
    sent: list[str] = []
    real_send = w.chain.send_transaction

    def die(tx: Transaction) -> str:
        sent.append(tx.signature)
        raise Crash

    monkeypatch.setattr(w.chain, "send_transaction", die)
    with pytest.raises(Crash):
        w.executor.execute(order.order_id, 1)
    monkeypatch.setattr(w.chain, "send_transaction", lambda tx: (sent.append(tx.signature), real_send(tx))[1])
    w.executor.execute(order.order_id, 2)
    assert len(set(sent)) == 1  # the very same transaction, not a new one
    assert w.chain.executed_swaps() == 1
    assert w.stored(order.order_id).status is OrderStatus.CONFIRMED


def test_order_abandoned_mid_routing_restarts_from_pending() -> None:
    w = World()
    order = w.order()
    stuck = w.stored(order.order_id)
    stuck.transition(OrderStatus.ROUTING)
    w.store.save(stuck, 1)
    w.executor.execute(order.order_id, 2)
    final = w.stored(order.order_id)
    assert [e.status.value for e in final.history] == [
        "pending", "routing", "pending", "routing", "building", "submitted", "confirmed"]
    assert w.chain.executed_swaps() == 1


def test_dropped_transaction_is_retried_then_fails_once_its_blockhash_expired() -> None:
    # GIVEN a network that drops the transaction
    w = World(blockhash_expiry_rate=1.0)
    order = w.order()
    # WHEN the worker has waited its bound (20 s) without a landing
    first = w.executor.execute(order.order_id, 1)
    # THEN it retries later, the order still submitted (it might yet land)
    assert first.kind is OutcomeKind.RETRY and first.reason == "confirmation_pending"
    assert w.stored(order.order_id).status is OrderStatus.SUBMITTED
    # WHEN the redelivery comes after the blockhash expired (150 blocks of 400 ms)
    w.clock.advance(61)
    w.executor.execute(order.order_id, 2)
    # THEN the order fails with that reason, nothing swapped
    final = w.stored(order.order_id)
    assert final.status is OrderStatus.FAILED
    assert final.error is not None and final.error["code"] == "blockhash_expired"
    assert w.chain.executed_swaps() == 0


def test_a_submitted_order_is_never_failed_for_a_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an order whose transaction was accepted, and an RPC node that then keeps failing
    w = World(confirm_latency_ms=(1_000, 1_000))
    order = w.order()

    def rpc_down(signature: str) -> Any:
        raise RpcError("RPC node returned 503")

    monkeypatch.setattr(w.chain, "get_signature_status", rpc_down)
    outcomes = [w.executor.execute(order.order_id, attempt) for attempt in (1, 2, 3)]
    # THEN every attempt, the last included, asks for a retry and the order stays submitted
    assert [o.kind for o in outcomes] == [OutcomeKind.RETRY] * 3
    assert w.stored(order.order_id).status is OrderStatus.SUBMITTED
    # WHEN the dead-letter handler runs once the node is back
    monkeypatch.undo()
    outcome = w.executor.fail_stuck(order.order_id, "retries_exhausted", "moved to the DLQ")
    # THEN it asked the chain: the swap landed, the order is confirmed, not failed
    assert outcome.kind is OutcomeKind.DONE
    assert w.stored(order.order_id).status is OrderStatus.CONFIRMED
    assert w.chain.executed_swaps() == 1


def test_dead_letter_path_fails_a_submitted_order_only_when_its_blockhash_expired() -> None:
    w = World(blockhash_expiry_rate=1.0)
    order = w.order()
    assert w.executor.execute(order.order_id, 1).kind is OutcomeKind.RETRY
    with pytest.raises(ConfirmationPendingError):  # still valid: the DLQ message is kept
        w.executor.fail_stuck(order.order_id, "retries_exhausted", "moved to the DLQ")
    assert w.stored(order.order_id).status is OrderStatus.SUBMITTED
    w.clock.advance(61)
    w.executor.fail_stuck(order.order_id, "retries_exhausted", "moved to the DLQ")
    final = w.stored(order.order_id)
    assert final.status is OrderStatus.FAILED and final.error is not None
    assert final.error["code"] == "blockhash_expired"


def test_order_moved_by_another_worker_while_failing_is_left_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    order = w.order()
    venues_time_out(w, monkeypatch)
    real_save = w.store.save

    def save_then_lose_race(o: Order, expected: int) -> Any:
        if o.status is OrderStatus.PENDING:  # the retry's write: another worker got there first
            raise StaleOrderError("moved")
        return real_save(o, expected)

    monkeypatch.setattr(w.store, "save", save_then_lose_race)
    outcome = w.executor.execute(order.order_id, 1)
    assert outcome.kind is OutcomeKind.IGNORED and outcome.reason == "stale"


def test_terminal_order_is_ignored() -> None:
    w = World()
    order = w.order()
    w.executor.execute(order.order_id)
    assert w.executor.execute(order.order_id, 2).kind is OutcomeKind.IGNORED
    assert w.executor.execute("ord_missing").kind is OutcomeKind.IGNORED


def test_slippage_at_landing_fails_the_order_as_slippage(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a transaction accepted with a 1 bp tolerance, and a large trade that lands before it
    w = World(confirm_latency_ms=(1_000, 1_000))
    order = w.order(slippage_bps=1)
    real_send = w.chain.send_transaction

    def send_then_front_run(tx: Transaction) -> str:
        signature = real_send(tx)
        q = tx.swaps[0].quote
        venue = w.market.venue(q.venue)
        venue.swap(venue.quote(SOL, USDC, 5_000 * 10**9), 0)
        return signature

    monkeypatch.setattr(w.chain, "send_transaction", send_then_front_run)
    w.executor.execute(order.order_id)
    final = w.stored(order.order_id)
    assert final.status is OrderStatus.FAILED and final.error is not None
    assert final.error["code"] == "slippage_exceeded"
    assert w.chain.executed_swaps() == 0  # the order's swap failed on chain; the front-run went to the venue directly
