"""Raydium AMM v4: a constant-product pool, integer math as the on-chain program does it.

For a swap of ``amount_in`` (exact in):

    fee        = ceil(amount_in · 25 / 10_000)          (trade fee taken from the input)
    in_net     = amount_in − fee
    amount_out = floor(reserve_out · in_net / (reserve_in + in_net))

The output can approach but never reach ``reserve_out``; the product of the reserves never
decreases (the fee stays in the pool). The fees taken are also counted apart, per token, as
the program's accumulators do, so a pool's history can be accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..domain import InsufficientLiquidityError, Token, ValidationError
from .pools import SwapResult

__all__ = ["FEE_DENOMINATOR", "FEE_NUMERATOR", "RaydiumPool", "constant_product_out"]

FEE_NUMERATOR = 25
FEE_DENOMINATOR = 10_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def constant_product_out(reserve_in: int, reserve_out: int, amount_in: int,
                         fee_numerator: int = FEE_NUMERATOR,
                         fee_denominator: int = FEE_DENOMINATOR) -> tuple[int, int]:
    """``(amount_out, fee)`` for an exact-in swap against reserves."""
    if amount_in <= 0:
        raise ValidationError("amount must be positive", field="amount")
    fee = _ceil_div(amount_in * fee_numerator, fee_denominator)
    in_net = amount_in - fee
    amount_out = reserve_out * in_net // (reserve_in + in_net)
    return amount_out, fee


@dataclass
class RaydiumPool:
    """One AMM v4 pool: ``reserve_x`` of ``token_x`` against ``reserve_y`` of ``token_y``."""

    pool_id: str
    token_x: Token
    token_y: Token
    reserve_x: int
    reserve_y: int
    fees_x: int = 0  # fees taken so far, already inside the reserves
    fees_y: int = 0
    fee_numerator: int = FEE_NUMERATOR
    fee_denominator: int = FEE_DENOMINATOR

    def _reserves(self, token_in: Token) -> tuple[int, int]:
        if token_in == self.token_x:
            return self.reserve_x, self.reserve_y
        if token_in == self.token_y:
            return self.reserve_y, self.reserve_x
        raise ValueError(f"{token_in.symbol} is not in pool {self.pool_id}")

    def spot_price(self, token_in: Token) -> Decimal:
        r_in, r_out = self._reserves(token_in)
        return Decimal(r_out) / Decimal(r_in)

    def reserves(self) -> tuple[int, int]:
        return self.reserve_x, self.reserve_y

    def simulate(self, token_in: Token, amount_in: int, now: float = 0.0) -> SwapResult:
        r_in, r_out = self._reserves(token_in)
        amount_out, fee = constant_product_out(r_in, r_out, amount_in, self.fee_numerator, self.fee_denominator)
        if amount_out <= 0:
            raise InsufficientLiquidityError(
                f"{amount_in} base units of {token_in.symbol} buy nothing in pool {self.pool_id}")
        in_net = amount_in - fee
        # Impact: how far the average price falls short of the spot price, fee excluded.
        ideal = in_net * r_out  # amount_out at spot price, times r_in
        impact_bps = (ideal - amount_out * r_in) * 10_000 // ideal if ideal else 0
        new_in, new_out = r_in + amount_in, r_out - amount_out
        if token_in == self.token_x:
            state = (new_in, new_out, self.fees_x + fee, self.fees_y)
        else:
            state = (new_out, new_in, self.fees_x, self.fees_y + fee)
        return SwapResult(amount_in, amount_out, fee, int(impact_bps), state)

    def commit(self, result: SwapResult, now: float = 0.0) -> None:
        self.reserve_x, self.reserve_y, self.fees_x, self.fees_y = result.state
