"""The simulated cluster's state port, in memory, and the market's one timeline on top of it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chalicelib.domain import PoolChange, SlippageExceededError, SwapInstruction, Transaction, get_token
from chalicelib.domain.clock import FakeClock
from chalicelib.execution.chain import ChainSettings, SimulatedChain
from chalicelib.routing.market import GENESIS_HEIGHT, MarketSettings, SimulatedMarket, pool_key
from chalicelib.routing.router import Router
from chalicelib.routing.state import InMemorySimState, StateTxn

SOL, USDC = get_token("SOL"), get_token("USDC")
ONE_SOL = 10**9


# -- the in-memory state ----------------------------------------------------------------------
def test_a_transaction_applies_its_writes_in_order_and_returns_what_the_body_returned() -> None:
    state = InMemorySimState()

    def body(txn: StateTxn) -> str:
        txn.watch("a", "q")
        assert txn.get("a", "b") == [None, None]
        txn.set("a", "1", 60)
        txn.zadd("q", "late", 20, 60)
        txn.zadd("q", "early", 10, 60)
        txn.zadd("q", "gone", 5, 60)
        txn.zrem("q", "gone")
        assert txn.get("a") == [None]  # writes apply when the body is done, as after EXEC
        return "done"

    assert state.transaction(body) == "done"
    assert state.read(["a", "b"], ["q", "empty"]) == (["1", None], [("early", 10), None])
    assert state.transaction(lambda txn: txn.due("q", 15)) == [("early", 10)]
    assert state.transaction(lambda txn: txn.due("q", 20)) == [("early", 10), ("late", 20)]


def test_a_body_that_raises_writes_nothing() -> None:
    state = InMemorySimState()

    def body(txn: StateTxn) -> None:
        txn.set("a", "1", 60)
        txn.zadd("q", "m", 1, 60)
        raise SlippageExceededError("no")

    with pytest.raises(SlippageExceededError):
        state.transaction(body)
    assert state.read(["a"], ["q"]) == ([None], [None])


def test_create_keeps_the_first_value() -> None:
    state = InMemorySimState()
    assert state.create("g", "first", 60) == "first"
    assert state.create("g", "second", 60) == "first"


# -- the market on it -------------------------------------------------------------------------
def market(state: InMemorySimState, clock: FakeClock, seed: int = 7, **settings: int) -> SimulatedMarket:
    """A market whose cluster's genesis is now (it is created at first use)."""
    m = SimulatedMarket(MarketSettings(seed=seed, **settings), clock, state=state)
    m.genesis_ms()
    return m


def test_two_markets_on_one_state_are_one_market() -> None:
    # GIVEN two processes' markets on one state and one clock
    state, clock = InMemorySimState(), FakeClock()
    a, b = market(state, clock), market(state, clock)
    ra, rb = Router(list(a.venues.values()), clock), Router(list(b.venues.values()), clock)
    assert ra.quotes(SOL, USDC, ONE_SOL) == rb.quotes(SOL, USDC, ONE_SOL)
    # WHEN one of them trades
    quote = a.venue("raydium").quote(SOL, USDC, 1_000 * ONE_SOL)
    a.venue("raydium").swap(quote, 0)
    # THEN the other quotes the moved pool, exactly as the first does
    assert rb.quotes(SOL, USDC, ONE_SOL) == ra.quotes(SOL, USDC, ONE_SOL)
    assert b.venue("raydium").quote(SOL, USDC, 1_000 * ONE_SOL).amount_out < quote.amount_out
    assert a.block_height() == b.block_height() == GENESIS_HEIGHT


def test_a_tick_happens_once_whoever_sees_it_due() -> None:
    state, clock = InMemorySimState(), FakeClock()
    seen: list[PoolChange] = []

    def listen(changes: Sequence[PoolChange]) -> None:
        seen.extend(changes)

    a = SimulatedMarket(MarketSettings(), clock, state=state, on_change=listen)
    b = market(state, clock)
    a.advance()  # the clock starts at genesis: nothing due yet
    clock.advance(1.0)
    moved = a.advance()
    assert {c.pool_id for c in moved} == set(a.specs) and {c.cause for c in moved} == {"tick"}
    assert {c.slot for c in moved} == {GENESIS_HEIGHT + 2}  # tick 1 at 1,000 ms: slot 2
    assert b.advance() == [] and a.advance() == []
    assert seen == moved


def test_ticks_depend_on_seed_tick_and_pool_only() -> None:
    # GIVEN one market observed every second and another observed once, three seconds later
    states = InMemorySimState(), InMemorySimState()
    clocks = FakeClock(), FakeClock()
    often, once = market(states[0], clocks[0]), market(states[1], clocks[1])
    for _ in range(3):
        clocks[0].advance(1.0)
        often.advance()
    clocks[1].advance(3.0)
    once.advance()
    # THEN both applied ticks 1, 2 and 3 to the same pools: the same states
    for pool_id in often.specs:
        assert often.encode(often.pool(pool_id)) == once.encode(once.pool(pool_id))
        assert pool_key(pool_id) in states[0].values  # every pool moved
    # AND another seed walks elsewhere
    other = market(InMemorySimState(), FakeClock(), seed=8)
    assert other.specs.keys().isdisjoint(often.specs.keys())


def test_a_quiet_cluster_catches_up_a_bounded_number_of_ticks() -> None:
    state, clock = InMemorySimState(), FakeClock()
    m = market(state, clock, max_catch_up_ticks=5)
    clock.advance(3_600)
    moved = m.advance()
    assert len({c.slot for c in moved}) == 5  # the last five ticks of the hour, not 3,600
    assert m.advance() == []


def test_a_read_with_nothing_due_needs_no_transaction() -> None:
    state, clock = InMemorySimState(), FakeClock()
    m = market(state, clock, drift_bps=0)
    m.pool(next(iter(m.specs)))  # creates the genesis
    before = state.transactions
    for _ in range(5):
        m.pool(next(iter(m.specs)))
    assert state.transactions == before
    clock.advance(0.4)  # a new slot: the cluster settles it once
    m.pool(next(iter(m.specs)))
    m.pool(next(iter(m.specs)))
    assert state.transactions == before + 1


def test_pool_states_round_trip_through_their_encoding() -> None:
    state, clock = InMemorySimState(), FakeClock()
    m = market(state, clock)
    clock.advance(5)
    m.advance()
    for pool_id in m.specs:
        raw = state.values[pool_key(pool_id)]
        assert m.encode(m.decode(pool_id, raw)) == raw


def test_a_landed_swap_tells_which_pool_changed_at_which_slot() -> None:
    state, clock = InMemorySimState(), FakeClock()
    seen: list[PoolChange] = []
    m = SimulatedMarket(MarketSettings(drift_bps=0), clock, state=state, on_change=seen.extend)
    chain = SimulatedChain(m, clock, ChainSettings(confirm_latency_ms=(800, 800)))
    quote = m.venue("meteora").quote(SOL, USDC, ONE_SOL)
    tx = Transaction("payer", chain.get_latest_blockhash(), (SwapInstruction(quote, 0),), "n")
    chain.send_transaction(tx)
    assert seen == []
    clock.advance(0.8)
    [status] = chain.get_signature_statuses([tx.signature])
    assert status is not None
    assert seen == [PoolChange("meteora", quote.pool_id, status.slot, "swap", tx.signature)]
    assert status.slot == GENESIS_HEIGHT + 2
