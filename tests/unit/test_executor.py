"""The executor with fakes: the lifecycle, error classes, and at-most-once under redelivery."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import (
    Order,
    OrderStatus,
    QuoteTimeoutError,
    RpcError,
    Transaction,
    get_token,
)
from chalicelib.domain.clock import FakeClock
from chalicelib.execution.chain import ChainSettings, SimulatedChain
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


def test_a_transaction_that_can_never_land_is_rebuilt_not_failed() -> None:
    # GIVEN a network that drops the transaction
    w = World(blockhash_expiry_rate=1.0)
    order = w.order()
    # WHEN the worker has waited its bound (20 s) without a landing
    first = w.executor.execute(order.order_id, 1)
    # THEN it retries later, the order still submitted (it might yet land)
    assert first.kind is OutcomeKind.RETRY and first.reason == "confirmation_pending"
    dropped = w.stored(order.order_id).signature
    assert w.stored(order.order_id).status is OrderStatus.SUBMITTED and dropped
    # WHEN the redelivery comes after the blockhash expired (150 blocks of 400 ms)
    w.clock.advance(61)
    second = w.executor.execute(order.order_id, 2)
    # THEN the order goes back to pending, without its old transaction, to be built afresh
    rebuilt = w.stored(order.order_id)
    assert second.kind is OutcomeKind.RETRY and second.reason == "blockhash_expired"
    assert rebuilt.status is OrderStatus.PENDING and rebuilt.signature is None and rebuilt.tx is None
    assert rebuilt.history[-1].data["expiredSignature"] == dropped
    assert rebuilt.history[-1].data["attempt"] == 3
    # WHEN the network delivers again and the order is retried
    w.chain.settings = ChainSettings(seed=11)
    assert w.executor.execute(order.order_id, 3).kind is OutcomeKind.DONE
    # THEN a new transaction landed, once; the old one never does
    final = w.stored(order.order_id)
    assert final.status is OrderStatus.CONFIRMED and final.tx_hash not in (None, dropped)
    assert [e.status.value for e in final.history] == [
        "pending", "routing", "building", "submitted", "pending", "routing", "building", "submitted", "confirmed"]
    w.clock.advance(120)
    assert w.chain.get_signature_statuses([dropped]) == [None]
    assert w.chain.executed_swaps() == 1


def test_the_last_attempt_fails_a_transaction_that_can_never_land() -> None:
    w = World(blockhash_expiry_rate=1.0)
    order = w.order()
    w.executor.execute(order.order_id, 1)
    signature = w.stored(order.order_id).signature
    w.clock.advance(61)
    w.executor.execute(order.order_id, 3)
    final = w.stored(order.order_id)
    assert final.status is OrderStatus.FAILED
    assert final.error is not None and final.error["code"] == "blockhash_expired"
    w.clock.advance(120)
    assert signature is not None and w.chain.get_signature_statuses([signature]) == [None]
    assert w.chain.executed_swaps() == 0  # failed, and nothing will ever land for it


class SlowStatuses:
    """A chain whose status answers take ``seconds`` (time passes between the RPC calls)."""

    def __init__(self, chain: SimulatedChain, clock: FakeClock, seconds: float) -> None:
        self._chain, self._clock, self._seconds = chain, clock, seconds

    def get_signature_statuses(self, signatures: Any) -> Any:
        answer = self._chain.get_signature_statuses(signatures)
        self._clock.advance(self._seconds)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)


def crash_after_a_late_send(w: World, monkeypatch: pytest.MonkeyPatch, order: Order, stall_seconds: float) -> str:
    """The worker stalls ``stall_seconds`` between persisting ``submitted`` and sending, sends, dies."""
    real_send = w.chain.send_transaction

    def stall_send_die(tx: Transaction) -> str:
        w.clock.advance(stall_seconds)
        real_send(tx)
        raise Crash

    monkeypatch.setattr(w.chain, "send_transaction", stall_send_die)
    with pytest.raises(Crash):
        w.executor.execute(order.order_id, 1)
    monkeypatch.setattr(w.chain, "send_transaction", real_send)
    signature = w.stored(order.order_id).signature
    assert signature is not None
    return signature


def test_redelivery_at_the_last_valid_height_never_fails_an_order_whose_swap_lands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a transaction built at height h (valid to h+150), sent at h+145, landing 2 s (5 slots)
    # later, at h+150 exactly, and the worker that sent it dead
    w = World(confirm_latency_ms=(2_000, 2_000))
    order = w.order()
    signature = crash_after_a_late_send(w, monkeypatch, order, stall_seconds=145 * 0.4)
    # WHEN the redelivery starts at h+147 on an RPC node whose status answers take two slots,
    # so a status read as unknown is followed by a height above the last valid one
    w.clock.advance(1.1)
    slow = Executor(w.store, Router(list(w.market.venues.values()), w.clock),
                    SlowStatuses(w.chain, w.clock, 0.8), w.clock, confirm_poll_seconds=0.1)
    outcome = slow.execute(order.order_id, 2)
    # THEN the order is confirmed with the transaction that landed, never failed before it
    final = w.stored(order.order_id)
    assert outcome.kind is OutcomeKind.DONE and final.status is OrderStatus.CONFIRMED
    assert final.tx_hash == signature and "failed" not in [e.status.value for e in final.history]
    [status] = w.chain.get_signature_statuses([signature])
    assert status is not None and status.slot == final.history[-1].data["slot"]
    assert w.chain.executed_swaps() == 1


def test_a_transaction_accepted_too_late_to_land_is_rebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a transaction valid to h+150, sent at h+145 and due 2.4 s (6 slots) later: at h+151
    w = World(confirm_latency_ms=(2_400, 2_400))
    order = w.order()
    signature = crash_after_a_late_send(w, monkeypatch, order, stall_seconds=145 * 0.4)
    # WHEN it is redelivered once the last valid height has passed
    w.clock.advance(4)
    outcome = w.executor.execute(order.order_id, 2)
    # THEN the chain dropped it, and the order was sent back to be built afresh
    assert outcome.kind is OutcomeKind.RETRY and outcome.reason == "blockhash_expired"
    assert w.stored(order.order_id).status is OrderStatus.PENDING
    assert w.chain.get_signature_statuses([signature]) == [None]
    assert w.chain.executed_swaps() == 0
    # AND the retry lands a new transaction, once
    w.executor.execute(order.order_id, 3)
    final = w.stored(order.order_id)
    assert final.status is OrderStatus.CONFIRMED and final.tx_hash != signature
    assert w.chain.executed_swaps() == 1


def test_a_submitted_order_is_never_failed_for_a_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an order whose transaction was accepted, and an RPC node that then keeps failing
    w = World(confirm_latency_ms=(1_000, 1_000))
    order = w.order()

    def rpc_down(signatures: Any) -> Any:
        raise RpcError("RPC node returned 503")

    monkeypatch.setattr(w.chain, "get_signature_statuses", rpc_down)
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
    # still valid: the DLQ message is kept, to be asked again once the blockhash has expired
    pending = w.executor.fail_stuck(order.order_id, "retries_exhausted", "moved to the DLQ")
    assert pending.kind is OutcomeKind.RETRY and pending.reason == "confirmation_pending"
    assert w.stored(order.order_id).status is OrderStatus.SUBMITTED
    stored = w.stored(order.order_id)
    assert stored.last_valid_block_height is not None
    slots_left = stored.last_valid_block_height - w.chain.get_block_height()
    assert 0 < slots_left * 0.4 <= pending.delay_seconds <= 60
    w.clock.advance(pending.delay_seconds)  # when the handler asks again, the chain can tell
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
    # a sentence for people, the chain's own error beside it for programs
    assert final.error["message"] == (f"the swap on {final.venue} returned less than the minimum (slippage exceeded); "
                                      "custom program error 6001 in instruction 0")
    assert final.error["chainError"]["InstructionError"] == [0, {"Custom": 6001}]
    assert final.history[-1].data["error"] == final.error


def test_a_blockhash_that_cannot_be_read_still_records_routing_before_the_retry(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # routing and building are written together; when building cannot start, routing is written alone
    w = World()
    order = w.order()

    def unavailable() -> Any:
        raise RpcError("getLatestBlockhash: node unavailable")

    monkeypatch.setattr(w.chain, "get_latest_blockhash", unavailable)
    outcome = w.executor.execute(order.order_id)
    assert outcome.kind is OutcomeKind.RETRY
    stored = w.stored(order.order_id)
    assert [(e.seq, e.status.value) for e in stored.history] == [(1, "pending"), (2, "routing"), (3, "pending")]
    assert stored.venue is None and stored.signature is None
    monkeypatch.undo()
    assert w.executor.execute(order.order_id, 2).kind is OutcomeKind.DONE
    assert w.stored(order.order_id).status is OrderStatus.CONFIRMED and w.chain.executed_swaps() == 1


def test_a_carried_order_is_run_without_a_read_and_a_stale_one_is_read_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    w = World()
    order = w.order()
    reads: list[str] = []
    real_get = w.store.get
    monkeypatch.setattr(w.store, "get", lambda order_id: reads.append(order_id) or real_get(order_id))
    snapshot, stale = real_get(order.order_id), real_get(order.order_id)
    assert w.executor.execute(order.order_id, 1, carried=snapshot).kind is OutcomeKind.DONE
    assert reads == [] and w.chain.executed_swaps() == 1
    # the same snapshot again (a second message for the order): refused, read, found done
    outcome = w.executor.execute(order.order_id, 1, carried=stale)
    assert outcome.kind is OutcomeKind.IGNORED and outcome.reason == "terminal"
    assert reads == [order.order_id] and w.chain.executed_swaps() == 1
