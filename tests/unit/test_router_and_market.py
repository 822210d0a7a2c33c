"""The seeded market and the router that picks among its venues."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import (
    TOKENS,
    InsufficientLiquidityError,
    NoRouteError,
    QuoteTimeoutError,
    RpcError,
    SlippageExceededError,
    ValidationError,
    get_token,
)
from chalicelib.domain.clock import FakeClock
from chalicelib.routing.market import MarketSettings, SimulatedMarket
from chalicelib.routing.router import Router, min_amount_out

from ..conftest import AppLog

SOL, USDC, BONK = get_token("SOL"), get_token("USDC"), get_token("BONK")
ONE_SOL = 1_000_000_000


def world(**settings: Any) -> tuple[SimulatedMarket, Router, FakeClock]:
    clock = FakeClock()
    market = SimulatedMarket(MarketSettings(**settings), clock)
    return market, Router(list(market.venues.values()), clock), clock


def test_same_seed_same_quotes_different_seed_different_quotes() -> None:
    a, b, c = (world(seed=s)[1] for s in (7, 7, 8))
    qa, qb, qc = (r.quotes(SOL, USDC, ONE_SOL)[0] for r in (a, b, c))
    assert [(q.venue, q.amount_out) for q in qa] == [(q.venue, q.amount_out) for q in qb]
    assert [q.amount_out for q in qa] != [q.amount_out for q in qc]


def test_every_pair_is_quoted_by_both_venues_a_few_percent_apart() -> None:
    _market, router, _ = world()
    symbols = sorted(TOKENS)
    for a in symbols:
        for b in symbols:
            if a == b:
                continue
            quotes, rejected = router.quotes(TOKENS[a], TOKENS[b], 10 ** TOKENS[a].decimals * 10)
            assert {q.venue for q in quotes} == {"raydium", "meteora"} and rejected == []
    quotes, _ = router.quotes(SOL, USDC, ONE_SOL)
    gap = (quotes[0].amount_out - quotes[1].amount_out) / quotes[1].amount_out
    assert 0.015 < gap < 0.06


def test_router_picks_the_best_net_output_and_applies_slippage(app_log: AppLog) -> None:
    _, router, _ = world()
    route = router.route(SOL, USDC, ONE_SOL, slippage_bps=50)
    best = max(route.quotes, key=lambda q: q.amount_out)
    assert route.venue == best.venue and route.amount_out == best.amount_out
    assert route.min_amount_out == best.amount_out * 9_950 // 10_000
    assert route.wrap_sol and not route.unwrap_sol
    [decision] = app_log.with_message("route")  # one JSON line, the quotes as keys of their own
    assert decision["winner"] == best.venue and decision["marginBps"] > 0
    assert decision["level"] == "INFO" and decision["service"] == "order-engine"
    assert [q["venue"] for q in decision["quotes"]] == [q.venue for q in route.quotes]
    assert decision["quotes"][0]["amountOut"] == str(best.amount_out)
    assert decision["minAmountOut"] == str(route.min_amount_out) and decision["tokenIn"] == "SOL"


def test_unwrap_when_sol_is_bought() -> None:
    _, router, _ = world()
    route = router.route(USDC, SOL, 150_000_000, slippage_bps=100)
    assert route.unwrap_sol and not route.wrap_sol


@settings(max_examples=40, deadline=None)
@given(amount=st.integers(1_000, 20_000 * ONE_SOL), slippage=st.integers(1, 5_000))
def test_router_output_is_the_max_over_venues(amount: int, slippage: int) -> None:
    market, router, _ = world()
    outs = []
    for venue in market.venues.values():
        try:
            outs.append(venue.quote(SOL, USDC, amount).amount_out)
        except InsufficientLiquidityError:
            pass
    route = router.route(SOL, USDC, amount, slippage)
    assert route.amount_out == max(outs)
    assert route.min_amount_out == max(outs) * (10_000 - slippage) // 10_000 <= route.amount_out


def test_a_failed_venue_is_reported_and_the_other_wins() -> None:
    market, router, _ = world()
    real = market.venues["raydium"]

    def broken(*args: Any) -> Any:
        raise RpcError("raydium RPC node returned 503")

    real.quote = broken  # type: ignore[method-assign]
    route = router.route(SOL, USDC, ONE_SOL, 50)
    assert route.venue == "meteora"
    assert route.rejected == ({"venue": "raydium", "code": "rpc_error", "message": "raydium RPC node returned 503"},)


def test_no_quote_at_all_is_a_transient_no_route() -> None:
    _, router, _ = world(quote_timeout_rate=1.0)
    with pytest.raises(NoRouteError) as info:
        router.route(SOL, USDC, ONE_SOL, 50)
    assert info.value.retryable and "did not answer" in info.value.message


def test_too_large_for_every_venue_is_insufficient_liquidity() -> None:
    _, router, _ = world()
    with pytest.raises(InsufficientLiquidityError):
        router.route(SOL, USDC, 10**9 * ONE_SOL, 50)


def test_expired_quotes_are_dropped() -> None:
    _market, router, _clock = world(quote_latency_ms=(20_000, 20_000), quote_ttl_seconds=10)
    with pytest.raises(NoRouteError):
        router.route(SOL, USDC, ONE_SOL, 50)


def test_bad_inputs_are_validation_errors() -> None:
    _, router, _ = world()
    with pytest.raises(ValidationError):
        router.quotes(SOL, SOL, ONE_SOL)
    with pytest.raises(ValidationError):
        router.quotes(SOL, USDC, 0)
    with pytest.raises(ValidationError):
        min_amount_out(100, 10_001)


def test_injected_faults_are_transient_errors() -> None:
    market, _, _ = world(quote_timeout_rate=1.0)
    with pytest.raises(QuoteTimeoutError):
        market.venues["raydium"].quote(SOL, USDC, ONE_SOL)
    market, _, _ = world(rpc_error_rate=1.0)
    with pytest.raises(RpcError):
        market.venues["meteora"].quote(SOL, USDC, ONE_SOL)


def test_swap_moves_the_pool_and_refuses_below_minimum() -> None:
    market, _, _ = world()
    venue = market.venues["raydium"]
    quote = venue.quote(SOL, USDC, 100 * ONE_SOL)
    with pytest.raises(SlippageExceededError):
        venue.swap(quote, quote.amount_out + 1)
    assert venue.quote(SOL, USDC, 100 * ONE_SOL).amount_out == quote.amount_out  # untouched
    fill = venue.swap(quote, quote.amount_out)
    assert fill.amount_out == quote.amount_out
    assert venue.quote(SOL, USDC, 100 * ONE_SOL).amount_out < quote.amount_out  # the price moved


def test_prices_drift_with_time_but_stay_near_their_start() -> None:
    _market, router, clock = world()
    start = {q.venue: q.amount_out for q in router.quotes(SOL, USDC, ONE_SOL)[0]}
    seen = set()
    for _ in range(120):
        clock.advance(5)
        now = {q.venue: q.amount_out for q in router.quotes(SOL, USDC, ONE_SOL)[0]}
        seen.add(now["raydium"])
        for venue, out in now.items():
            assert abs(out - start[venue]) / start[venue] < 0.02
    assert len(seen) > 50  # it does move


def test_no_pool_for_an_unlisted_pair() -> None:
    market, _, _ = world()
    from chalicelib.domain import Token

    other = Token("XYZ", "XYZmint", 6)
    with pytest.raises(NoRouteError):
        market.venues["raydium"].quote(SOL, other, 1)
    assert market.has_pair(SOL, BONK) and not market.has_pair(SOL, other)
