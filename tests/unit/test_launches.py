"""Tokens launched on the simulated cluster: a pool that opens at its slot, shared by every process."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.domain import NoRouteError, Quote, UnknownTokenError, ValidationError, get_token
from chalicelib.domain.clock import FakeClock
from chalicelib.routing.launches import LaunchTerms
from chalicelib.routing.market import MarketSettings, SimulatedMarket
from chalicelib.routing.router import Router
from chalicelib.routing.state import InMemorySimState

SOL = get_token("SOL")
LAMPORTS = 1_000_000_000


def terms(**overrides: object) -> LaunchTerms:
    base: dict[str, object] = dict(symbol="PEPE2", decimals=6, venue="raydium", liquidity=50 * LAMPORTS,
                                   price=Decimal("0.00002"), open_in_slots=10, mint_renounced=True,
                                   freeze_renounced=False, lp_burned=True)
    base.update(overrides)
    return LaunchTerms(**base)  # type: ignore[arg-type]


def two_processes() -> tuple[SimulatedMarket, SimulatedMarket, FakeClock]:
    """Two markets on one state: what two containers on one Redis see."""
    clock, state = FakeClock(), InMemorySimState()
    return (SimulatedMarket(MarketSettings(drift_bps=0), clock, state=state),
            SimulatedMarket(MarketSettings(drift_bps=0), clock, state=state), clock)


@pytest.mark.parametrize("venue", ["raydium", "meteora"])
def test_a_launched_pool_refuses_trades_until_its_open_slot_then_trades(venue: str) -> None:
    a, _b, clock = two_processes()
    launch = a.launch(terms(venue=venue), nonce=b"one")
    token = a.token(launch.token.mint)
    assert token.symbol == "PEPE2" and token.decimals == 6 and 32 <= len(token.mint) <= 44
    router = Router(list(a.venues.values()), clock)
    quotes, rejected = router.quotes(SOL, token, LAMPORTS)
    assert quotes == [] and any("opens at slot" in r["message"] for r in rejected)
    clock.advance(10 * 0.4)
    quotes, _ = router.quotes(SOL, token, LAMPORTS)
    [quote] = quotes
    # 1 SOL at 0.00002 SOL per token buys about 50,000 tokens, less the fee and the impact of 2 % of the pool
    assert quote.venue == venue and 45_000 * 10**6 < quote.amount_out < 50_000 * 10**6


def test_another_process_learns_the_launch_and_quotes_it_identically() -> None:
    a, b, clock = two_processes()
    launch = a.launch(terms(open_in_slots=0), nonce=b"two")
    token_b = b.token(launch.token.mint)  # b never saw the launch happen
    assert token_b == launch.token
    qa = Router(list(a.venues.values()), clock).quotes(SOL, launch.token, LAMPORTS)[0]
    qb = Router(list(b.venues.values()), clock).quotes(SOL, token_b, LAMPORTS)[0]
    assert [(q.pool_id, q.amount_out) for q in qa] == [(q.pool_id, q.amount_out) for q in qb]


def test_ticks_leave_launched_pools_alone_so_every_process_ticks_the_same_pools() -> None:
    clock, state = FakeClock(), InMemorySimState()
    a = SimulatedMarket(MarketSettings(), clock, state=state)
    launch = a.launch(terms(open_in_slots=0), nonce=b"three")
    before = a.encode(a.pool(launch.pool_id))
    clock.advance(5)
    changes = a.advance()
    assert changes and launch.pool_id not in {c.pool_id for c in changes}
    assert a.encode(a.pool(launch.pool_id)) == before


def test_unknown_mints_stay_unknown_and_bad_terms_name_their_field() -> None:
    a, _b, _clock = two_processes()
    with pytest.raises(UnknownTokenError):
        a.token("So1aNotAMintThatWasEverLaunched11111111111", field="tokenOut")
    with pytest.raises(ValidationError) as info:
        a.launch(terms(venue="orca"), nonce=b"x")
    assert info.value.field == "venue"
    with pytest.raises(ValidationError) as info:
        a.launch(terms(liquidity=1, price=Decimal("1000")), nonce=b"y")
    assert info.value.field == "liquidity"


def test_a_market_lists_a_launch_with_its_authorities_and_open_slot() -> None:
    a, _b, _clock = two_processes()
    launch = a.launch(terms(), nonce=b"four")
    listed = {spec.pool_id: found for spec, _pool, found in a.markets()}
    assert listed[launch.pool_id] == launch and launch.freeze_renounced is False
    assert all(found is None for pool_id, found in listed.items() if pool_id != launch.pool_id)


def test_a_swap_before_the_pool_opens_is_refused() -> None:
    a, _b, _clock = two_processes()
    launch = a.launch(terms(open_in_slots=5), nonce=b"five")
    spec = a.venue("raydium").spec_for(SOL, launch.token)
    early = Quote("raydium", spec.pool_id, SOL, launch.token, LAMPORTS, 1, 0, 0, 1e12)
    with pytest.raises(NoRouteError) as info:
        a.swap_now(early, 0)
    assert "opens at slot" in info.value.message
