"""Venue math: exact amounts derived by hand, then properties over random sizes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import InsufficientLiquidityError, get_token
from chalicelib.routing.meteora import DlmmParameters, DlmmPool
from chalicelib.routing.raydium import RaydiumPool, constant_product_out

SOL, USDC = get_token("SOL"), get_token("USDC")


# -- Raydium AMM v4 ---------------------------------------------------------------------------
def test_raydium_fee_is_taken_from_the_input_and_rounded_up() -> None:
    # 1001 · 25 / 10_000 = 2.5025 -> 3
    _, fee = constant_product_out(10**9, 10**9, 1001)
    assert fee == 3


def test_raydium_exact_output_for_hand_computed_reserves() -> None:
    # GIVEN 100 SOL against 15,000 USDC, WHEN 1 SOL is sold:
    #   fee = ceil(1e9 · 25 / 1e4) = 2_500_000 lamports, in_net = 997_500_000
    #   out = floor(15e9 · 997.5e6 / (100e9 + 997.5e6)) = floor(148_147_231.37…) = 148_147_231
    pool = RaydiumPool("p", SOL, USDC, 100_000_000_000, 15_000_000_000)
    result = pool.simulate(SOL, 1_000_000_000)
    assert (result.fee, result.amount_out) == (2_500_000, 148_147_231)
    pool.commit(result)
    assert (pool.reserve_x, pool.reserve_y) == (101_000_000_000, 15_000_000_000 - 148_147_231)


def test_raydium_reverse_direction_uses_the_other_reserve() -> None:
    # 150 USDC in: fee = ceil(150e6 · 25 / 1e4) = 375_000; in_net = 149_625_000
    # out = floor(100e9 · 149_625_000 / (15e9 + 149_625_000)) = floor(987_648_209.6…) = 987_648_209
    pool = RaydiumPool("p", SOL, USDC, 100_000_000_000, 15_000_000_000)
    assert pool.simulate(USDC, 150_000_000).amount_out == 987_648_209


@settings(max_examples=200, deadline=None)
@given(reserve_in=st.integers(10**6, 10**18), reserve_out=st.integers(10**6, 10**18),
       a=st.integers(1, 10**19), b=st.integers(1, 10**19))
def test_raydium_properties(reserve_in: int, reserve_out: int, a: int, b: int) -> None:
    small, large = sorted((a, b))
    out_small, fee_small = constant_product_out(reserve_in, reserve_out, small)
    out_large, fee_large = constant_product_out(reserve_in, reserve_out, large)
    assert 0 <= fee_small <= fee_large
    assert out_small <= out_large < reserve_out  # more in, more out, never the whole reserve
    # the average price of what reaches the pool (input net of fee) only worsens with size
    # (cross-multiplied; one unit of rounding allowed). Gross of fee, dust trades pay more: the fee rounds up.
    net_small, net_large = small - fee_small, large - fee_large
    assert out_large * net_small <= out_small * net_large + net_large
    # the product of the reserves never decreases
    assert (reserve_in + large) * (reserve_out - out_large) >= reserve_in * reserve_out


# -- Meteora DLMM -----------------------------------------------------------------------------
def _pool(variable_fee_control: int = 0) -> DlmmPool:
    # bin step 100 bps, base factor 10_000 -> base fee 10_000·100·10 = 1e7 / 1e9 = 1 %
    params = DlmmParameters(bin_step=100, base_factor=10_000, variable_fee_control=variable_fee_control)
    bins = {0: (1_000, 1_000), -1: (0, 1_000), -2: (0, 1_000), 1: (1_000, 0)}
    return DlmmPool("m", SOL, USDC, active_id=0, bins=bins, params=params)


def test_dlmm_bin_price_and_base_fee() -> None:
    pool = _pool()
    assert pool.bin_price(0) == 1
    assert pool.bin_price(2) == Decimal("1.0201")
    assert pool.base_fee_rate() == 10_000_000


def test_dlmm_swap_inside_one_bin_is_constant_sum() -> None:
    # 500 x in at price 1: fee = ceil(500 · 1e7 / 1e9) = 5, in_net = 495, out = 495
    result = _pool().simulate(SOL, 500)
    assert (result.amount_out, result.fee, result.price_impact_bps) == (495, 5, 0)


def test_dlmm_swap_walks_to_the_next_bin() -> None:
    # bin 0 drained: max_in 1000 + fee ceil(1000·1e7/(1e9−1e7)) = 11, out 1000, remaining 1500−1011 = 489
    # bin −1 (price 1/1.01): fee ceil(489·1e7/1e9) = 5, in_net 484, out floor(484/1.01) = 479
    pool = _pool()
    result = pool.simulate(SOL, 1_500)
    assert (result.amount_out, result.fee) == (1_479, 16)
    pool.commit(result)
    assert pool.active_id == -1
    assert pool.bins[0] == (2_000, 0) and pool.bins[-1] == (484, 521)


def test_dlmm_variable_fee_follows_the_sdk_formula() -> None:
    pool = DlmmPool("m", SOL, USDC, 0, {0: (1, 1)}, DlmmParameters())  # bin step 25, control 7_500
    # (10_000 · 25)² · 7_500 = 4.6875e14; ceil(/1e11) = 4_688
    assert pool.variable_fee_rate(10_000) == 4_688
    assert pool.total_fee_rate(150_000) == 2_500_000 + 1_054_688


def test_dlmm_volatility_accumulator_grows_with_bins_crossed() -> None:
    pool = _pool(variable_fee_control=7_500)
    pool.commit(pool.simulate(SOL, 2_500, now=0.0), now=0.0)
    assert pool.volatility.accumulator == 20_000  # two bins away from the reference


def test_dlmm_runs_out_of_bins() -> None:
    with pytest.raises(InsufficientLiquidityError):
        _pool().simulate(SOL, 10_000)


@settings(max_examples=100, deadline=None)
@given(a=st.integers(1, 3_000_000_000_000), b=st.integers(1, 3_000_000_000_000),
       sell_x=st.booleans())
def test_dlmm_properties(a: int, b: int, sell_x: bool) -> None:
    pool = DlmmPool.seeded("m", SOL, USDC, Decimal("0.15"), x_per_bin=50_000_000_000, bins_each_side=30)
    token = SOL if sell_x else USDC
    small, large = sorted((a if sell_x else a // 10, b if sell_x else b // 10))
    small, large = max(small, 1), max(large, 1)
    try:
        r_large = pool.simulate(token, large)
    except InsufficientLiquidityError:
        return
    try:
        r_small = pool.simulate(token, small)
    except InsufficientLiquidityError:  # too small to buy a single unit after the fee
        return
    assert 0 <= r_small.fee <= r_large.fee
    assert r_small.amount_out <= r_large.amount_out
    net_small, net_large = small - r_small.fee, large - r_large.fee
    assert r_large.amount_out * net_small <= r_small.amount_out * net_large + net_large
    assert r_large.price_impact_bps >= 0
