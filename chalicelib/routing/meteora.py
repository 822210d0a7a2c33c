"""Meteora DLMM: liquidity in discrete price bins, following the DLMM program and its SDK.

* Bin ``id`` has price ``(1 + binStep/10_000)^id`` (token_y base units per token_x base unit).
* Inside a bin the price is constant (constant sum ``P·x + y = L``): a swap takes the bin's
  output reserve at that price, then moves the active bin on and continues.
* Bins below the active one hold only ``y``, bins above only ``x``.
* Fee rate (units of 1e-9, capped at 10 %) per bin crossed:
  ``base = baseFactor · binStep · 10``;
  ``variable = ceil(variableFeeControl · (volatilityAccumulator · binStep)² / 1e11)``.
  The volatility accumulator is ``volatilityReference + |indexReference − activeId| · 10_000``
  (capped), where the references are refreshed once ``filterPeriod`` has passed since the last
  swap and decay by ``reductionFactor`` until ``decayPeriod``.
* Fees are charged on the input: ``ceil(amount · rate / 1e9)`` of an amount that includes the
  fee, ``ceil(amount · rate / (1e9 − rate))`` on top of an amount that excludes it. Outputs
  round down, inputs round up: rounding always favours the pool.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from functools import lru_cache

from ..domain import InsufficientLiquidityError, Token, ValidationError
from .pools import SwapResult

__all__ = ["BASIS_POINT_MAX", "FEE_PRECISION", "DlmmParameters", "DlmmPool", "Volatility", "bin_price"]

BASIS_POINT_MAX = 10_000
FEE_PRECISION = 1_000_000_000
MAX_FEE_RATE = 100_000_000  # 10 %
_CTX = Context(prec=60)


@lru_cache(maxsize=65_536)
def bin_price(bin_step: int, bin_id: int) -> Decimal:
    """``(1 + binStep/10_000)^id``: shared by every pool with that bin step, computed once."""
    base = _CTX.add(Decimal(1), _CTX.divide(Decimal(bin_step), Decimal(BASIS_POINT_MAX)))
    return _CTX.power(base, bin_id)


@dataclass(frozen=True)
class DlmmParameters:
    """Static fee parameters (the values of Meteora's SOL-USDC 25 bps preset by default)."""

    bin_step: int = 25
    base_factor: int = 10_000
    filter_period: int = 30
    decay_period: int = 600
    reduction_factor: int = 5_000
    variable_fee_control: int = 7_500
    max_volatility_accumulator: int = 150_000


@dataclass
class Volatility:
    """The DLMM's variable-fee state; ``last_update`` in seconds on the market's clock."""

    accumulator: int = 0
    reference: int = 0
    index_reference: int = 0
    last_update: float = 0.0


@dataclass(frozen=True)
class _State:
    active_id: int
    bins: dict[int, tuple[int, int]]  # only the bins the swap touched
    volatility: Volatility
    fees_x: int
    fees_y: int


@dataclass
class DlmmPool:
    pool_id: str
    token_x: Token
    token_y: Token
    active_id: int
    bins: dict[int, tuple[int, int]]  # id -> (amount_x, amount_y)
    params: DlmmParameters = field(default_factory=DlmmParameters)
    volatility: Volatility = field(default_factory=Volatility)
    fees_x: int = 0
    fees_y: int = 0

    @classmethod
    def seeded(cls, pool_id: str, token_x: Token, token_y: Token, price: Decimal, x_per_bin: int,
               bins_each_side: int, params: DlmmParameters | None = None, now: float = 0.0) -> DlmmPool:
        """A pool centred on ``price`` (y base units per x base unit) with uniform depth."""
        p = params or DlmmParameters()
        step = _CTX.add(Decimal(1), _CTX.divide(Decimal(p.bin_step), Decimal(BASIS_POINT_MAX)))
        active = int(_CTX.divide(price.ln(_CTX), step.ln(_CTX)).to_integral_value())
        pool = cls(pool_id, token_x, token_y, active, {}, p, Volatility(index_reference=active, last_update=now))
        for bin_id in range(active - bins_each_side, active + bins_each_side + 1):
            y_value = int(_CTX.multiply(Decimal(x_per_bin), pool.bin_price(bin_id)))
            if bin_id < active:
                pool.bins[bin_id] = (0, y_value)
            elif bin_id > active:
                pool.bins[bin_id] = (x_per_bin, 0)
            else:
                pool.bins[bin_id] = (x_per_bin // 2, y_value // 2)
        return pool

    # -- prices and fees -------------------------------------------------------------------------
    def bin_price(self, bin_id: int) -> Decimal:
        return bin_price(self.params.bin_step, bin_id)

    def spot_price(self, token_in: Token) -> Decimal:
        price = self.bin_price(self.active_id)
        return price if token_in == self.token_x else _CTX.divide(Decimal(1), price)

    def reserves(self) -> tuple[int, int]:
        return sum(x for x, _ in self.bins.values()), sum(y for _, y in self.bins.values())

    def base_fee_rate(self) -> int:
        return self.params.base_factor * self.params.bin_step * 10

    def variable_fee_rate(self, volatility_accumulator: int) -> int:
        if self.params.variable_fee_control == 0:
            return 0
        square = (volatility_accumulator * self.params.bin_step) ** 2
        v_fee = self.params.variable_fee_control * square
        return (v_fee + 99_999_999_999) // 100_000_000_000

    def total_fee_rate(self, volatility_accumulator: int) -> int:
        return min(self.base_fee_rate() + self.variable_fee_rate(volatility_accumulator), MAX_FEE_RATE)

    # -- swaps -----------------------------------------------------------------------------------
    def simulate(self, token_in: Token, amount_in: int, now: float = 0.0) -> SwapResult:
        if amount_in <= 0:
            raise ValidationError("amount must be positive", field="amount")
        if token_in == self.token_x:
            swap_for_y = True
        elif token_in == self.token_y:
            swap_for_y = False
        else:
            raise ValueError(f"{token_in.symbol} is not in pool {self.pool_id}")
        p = self.params
        v = Volatility(self.volatility.accumulator, self.volatility.reference,
                        self.volatility.index_reference, self.volatility.last_update)
        active = self.active_id
        # update_references: a new reference after filter_period, decaying volatility until decay_period.
        elapsed = now - v.last_update
        if elapsed >= p.filter_period:
            v.index_reference = active
            v.reference = v.accumulator * p.reduction_factor // BASIS_POINT_MAX if elapsed < p.decay_period else 0
        touched: dict[int, tuple[int, int]] = {}
        lowest, highest = min(self.bins), max(self.bins)
        start_price = self.bin_price(active)
        remaining, total_out, total_fee = amount_in, 0, 0
        while remaining > 0:
            if not lowest <= active <= highest:
                raise InsufficientLiquidityError(
                    f"pool {self.pool_id} has no liquidity left for {amount_in} base units of {token_in.symbol}")
            # update_volatility_accumulator, once per bin crossed.
            v.accumulator = min(v.reference + abs(v.index_reference - active) * BASIS_POINT_MAX,
                                p.max_volatility_accumulator)
            x, y = touched.get(active, self.bins.get(active, (0, 0)))
            max_out = y if swap_for_y else x
            if max_out > 0:
                price = self.bin_price(active)
                rate = self.total_fee_rate(v.accumulator)
                needed = _CTX.divide(Decimal(max_out), price) if swap_for_y else _CTX.multiply(Decimal(max_out), price)
                max_in = int(needed.to_integral_value(ROUND_CEILING))
                max_fee = -(-max_in * rate // (FEE_PRECISION - rate))
                if remaining >= max_in + max_fee:
                    in_net, fee, out = max_in, max_fee, max_out
                else:
                    fee = -(-remaining * rate // FEE_PRECISION)
                    in_net = remaining - fee
                    raw = _CTX.multiply(Decimal(in_net), price) if swap_for_y else _CTX.divide(Decimal(in_net), price)
                    out = min(int(raw.to_integral_value(ROUND_FLOOR)), max_out)
                touched[active] = (x + in_net, y - out) if swap_for_y else (x - out, y + in_net)
                remaining -= in_net + fee
                total_out += out
                total_fee += fee
            if remaining > 0:
                active += -1 if swap_for_y else 1
        v.last_update = now
        if total_out <= 0:
            raise InsufficientLiquidityError(
                f"{amount_in} base units of {token_in.symbol} buy nothing in pool {self.pool_id}")
        spot = start_price if swap_for_y else _CTX.divide(Decimal(1), start_price)
        ideal = _CTX.multiply(Decimal(amount_in - total_fee), spot)
        impact = _CTX.divide(_CTX.multiply(ideal - Decimal(total_out), Decimal(BASIS_POINT_MAX)), ideal)
        impact_bps = max(0, int(impact.to_integral_value(ROUND_FLOOR)))
        state = _State(active, touched, v, self.fees_x + (total_fee if swap_for_y else 0),
                       self.fees_y + (0 if swap_for_y else total_fee))
        return SwapResult(amount_in, total_out, total_fee, impact_bps, state)

    def commit(self, result: SwapResult, now: float = 0.0) -> None:
        state: _State = result.state
        self.active_id = state.active_id
        self.bins.update(state.bins)
        self.volatility = state.volatility
        self.fees_x, self.fees_y = state.fees_x, state.fees_y
