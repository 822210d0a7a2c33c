"""The simulated Solana cluster: signatures, blockhash validity, landing and de-duplication."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain import (
    BlockhashExpiredError,
    RpcError,
    SignatureStatus,
    SlippageExceededError,
    SwapInstruction,
    Transaction,
    WrapSol,
    describe_transaction_error,
    get_token,
)
from chalicelib.domain.base58 import b58decode, b58encode
from chalicelib.domain.clock import FakeClock
from chalicelib.execution.chain import ChainSettings, SimulatedChain
from chalicelib.execution.transactions import transaction_from_dict, transaction_to_dict
from chalicelib.routing.market import MarketSettings, SimulatedMarket
from chalicelib.routing.router import Router
from chalicelib.routing.state import InMemorySimState

SOL, USDC = get_token("SOL"), get_token("USDC")


class World:
    def __init__(self, **chain: Any) -> None:
        self.clock = FakeClock()
        self.market = SimulatedMarket(MarketSettings(seed=3, drift_bps=0), self.clock)
        self.chain = SimulatedChain(self.market, self.clock, ChainSettings(**chain))
        self.router = Router(list(self.market.venues.values()), self.clock)

    def status(self, signature: str) -> SignatureStatus | None:
        [status] = self.chain.get_signature_statuses([signature])
        return status

    def tx(self, amount: int = 10**9, slippage_bps: int = 50, nonce: str = "n1") -> Transaction:
        route = self.router.route(SOL, USDC, amount, slippage_bps)
        leg = route.legs[0]
        return Transaction("payer", self.chain.get_latest_blockhash(),
                           (WrapSol(amount), SwapInstruction(leg.quote, leg.min_amount_out)), nonce)


def test_base58_round_trip_keeps_leading_zeros() -> None:
    for raw in (b"", b"\0\0\x01", bytes(range(64))):
        assert b58decode(b58encode(raw)) == raw
    assert b58encode(b"\0\0\x01") == "112"


def test_signature_is_64_bytes_of_base58_and_deterministic() -> None:
    w = World()
    tx = w.tx()
    assert len(b58decode(tx.signature)) == 64 and 86 <= len(tx.signature) <= 88
    assert tx.signature == w.tx().signature  # same message, same signature
    assert tx.signature != w.tx(nonce="n2").signature
    assert transaction_from_dict(transaction_to_dict(tx), SOL, USDC).signature == tx.signature


def test_blockhash_lives_150_blocks_of_400_ms() -> None:
    w = World()
    first = w.chain.get_latest_blockhash()
    assert first.last_valid_block_height == w.chain.get_block_height() + 150
    w.clock.advance(0.4 * 10)
    assert w.chain.get_block_height() == first.last_valid_block_height - 140
    assert w.chain.get_latest_blockhash().value != first.value


def test_transaction_lands_after_the_latency_then_finalizes() -> None:
    w = World(confirm_latency_ms=(2_000, 2_000))
    tx = w.tx()
    w.chain.send_transaction(tx)
    assert w.status(tx.signature) is None
    w.clock.advance(2.0)
    status = w.status(tx.signature)
    assert status is not None and status.confirmation_status == "confirmed" and status.err is None
    assert status.fills[0].amount_out >= tx.swaps[0].min_amount_out
    w.clock.advance(0.4 * 32)
    final = w.status(tx.signature)
    assert final is not None and final.confirmation_status == "finalized"


def test_sending_twice_swaps_once() -> None:
    w = World()
    tx = w.tx()
    assert w.chain.send_transaction(tx) == w.chain.send_transaction(tx) == tx.signature
    assert w.chain.executed_swaps() == 1 and w.chain.send_calls() == 2


def test_expired_blockhash_is_refused() -> None:
    w = World()
    tx = w.tx()
    w.clock.advance(0.4 * 151)
    with pytest.raises(BlockhashExpiredError):
        w.chain.send_transaction(tx)


def test_preflight_refuses_a_swap_below_its_minimum() -> None:
    w = World()
    tx = w.tx(slippage_bps=1)
    # another trade moves the pool first
    q = tx.swaps[0].quote
    w.market.venue(q.venue).swap(w.market.venue(q.venue).quote(SOL, USDC, 5_000 * 10**9), 0)
    with pytest.raises(SlippageExceededError) as info:
        w.chain.send_transaction(tx)
    assert w.chain.executed_swaps() == 0
    message = info.value.message  # a sentence in token units, not base units
    assert message.startswith(f"the RPC node's preflight refused the transaction: the swap on {q.venue} would return ")
    assert message.endswith("(slippage exceeded)") and "USDC, less than the minimum of " in message
    assert "base units" not in message and "<" not in message


def test_slippage_at_landing_is_an_on_chain_error() -> None:
    w = World(confirm_latency_ms=(1_000, 1_000))
    tx = w.tx(slippage_bps=1)
    w.chain.send_transaction(tx)
    q = tx.swaps[0].quote
    w.market.venue(q.venue).swap(w.market.venue(q.venue).quote(SOL, USDC, 5_000 * 10**9), 0)  # front-run
    w.clock.advance(1.0)
    status = w.status(tx.signature)
    assert status is not None and status.err is not None and status.err["name"] == "SlippageToleranceExceeded"
    assert w.chain.executed_swaps() == 0


def test_rpc_errors_and_dropped_transactions_are_injectable() -> None:
    w = World(rpc_error_rate=1.0)
    with pytest.raises(RpcError):
        w.chain.send_transaction(w.tx())
    w = World(blockhash_expiry_rate=1.0)
    tx = w.tx()
    w.chain.send_transaction(tx)
    w.clock.advance(120)
    assert w.status(tx.signature) is None  # dropped: never lands


def test_a_transaction_lands_at_its_last_valid_height_and_never_after() -> None:
    # GIVEN two transactions built at height h (valid to h+150), both accepted at h+145:
    # one due 2.0 s (5 slots) later, at h+150, the other 2.4 s (6 slots) later, at h+151
    on_time, late = World(confirm_latency_ms=(2_000, 2_000)), World(confirm_latency_ms=(2_400, 2_400))
    txs = []
    for w in (on_time, late):
        tx = w.tx()
        w.clock.advance(145 * 0.4)
        w.chain.send_transaction(tx)
        w.clock.advance(10)
        txs.append(tx)
    # THEN the first landed at h+150 with its fill; the second was dropped and never lands
    landed = on_time.status(txs[0].signature)
    assert landed is not None and landed.slot == txs[0].recent_blockhash.last_valid_block_height
    assert landed.fills and on_time.chain.executed_swaps() == 1
    late.clock.advance(600)
    assert late.status(txs[1].signature) is None and late.chain.executed_swaps() == 0


def test_everything_due_lands_before_a_status_is_answered() -> None:
    w = World(confirm_latency_ms=(1_000, 1_000))
    tx = w.tx()
    w.chain.send_transaction(tx)
    w.clock.advance(1.0)
    # nobody asked in between: the first status read finds it landed, at the slot it was due
    status = w.status(tx.signature)
    assert status is not None and status.slot == tx.recent_blockhash.last_valid_block_height - 150 + 2
    w.clock.advance(0.4 * 40)
    assert w.status(tx.signature) == SignatureStatus(status.slot, "finalized", None, status.fills)


def test_a_send_after_an_expiry_was_observed_can_never_land_earlier() -> None:
    # GIVEN two processes on one cluster, the sender's clock a minute behind the other's
    state = InMemorySimState()
    late_clock, clock = FakeClock(), FakeClock()
    clock.advance(61)
    sender_market = SimulatedMarket(MarketSettings(seed=3, drift_bps=0), late_clock, state=state)
    sender = SimulatedChain(sender_market, late_clock)
    other = SimulatedChain(SimulatedMarket(MarketSettings(seed=3, drift_bps=0), clock, state=state), clock)
    router = Router(list(sender_market.venues.values()), late_clock)
    leg = router.route(SOL, USDC, 10**9, 50).legs[0]
    tx = Transaction("payer", sender.get_latest_blockhash(),
                     (WrapSol(10**9), SwapInstruction(leg.quote, leg.min_amount_out)), "n1")
    # WHEN the other process reads a height above the blockhash's last valid one, then an
    # unknown status (so it concludes the transaction can never land)...
    assert other.get_block_height() > tx.recent_blockhash.last_valid_block_height
    assert other.get_signature_statuses([tx.signature]) == [None]
    # ...and only then the slow sender's transaction reaches the cluster, still valid by its clock
    assert sender.send_transaction(tx) == tx.signature
    # THEN the cluster schedules it no earlier than what it had settled: it never lands
    late_clock.advance(600)
    clock.advance(600)
    assert other.get_signature_statuses([tx.signature]) == [None]
    assert sender.get_signature_statuses([tx.signature]) == [None]
    assert other.executed_swaps() == 0


@pytest.mark.parametrize(("err", "venue", "message"), [
    ({"InstructionError": [0, {"Custom": 6001}], "name": "SlippageToleranceExceeded"}, "raydium",
     "the swap on raydium returned less than the minimum (slippage exceeded); "
     "custom program error 6001 in instruction 0"),
    ({"InstructionError": [1, "ProgramFailedToComplete"], "name": "InsufficientLiquidityError"}, "meteora",
     "the swap on meteora could not be filled by the pool (insufficient liquidity); program failed to complete "
     "in instruction 1"),
    ({"InstructionError": [2, {"Custom": 42}]}, None,
     "the swap failed on chain; custom program error 42 in instruction 2"),
    ({"InsufficientFundsForRent": {"account_index": 2}}, "raydium",
     "the transaction failed on chain: insufficient funds for rent"),
    ({"BlockhashNotFound": None}, None, "the transaction failed on chain: blockhash not found"),
])
def test_a_chain_error_reads_as_a_sentence(err: dict[str, Any], venue: str | None, message: str) -> None:
    text = describe_transaction_error(err, venue)
    assert text == message
    assert "{" not in text and "[" not in text and "'" not in text
