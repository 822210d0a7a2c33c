"""What venues answer (quotes), what swaps produce (fills) and the route the router picks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .amounts import to_decimal_string
from .tokens import Token

__all__ = ["Fill", "Quote", "Route", "RouteLeg"]


@dataclass(frozen=True)
class Quote:
    """A venue's firm-until-expiry offer. Amounts are integer base units.

    ``fee`` is in base units of ``token_in``; ``price_impact_bps`` compares the average
    execution price with the pool's spot price before the swap.
    """

    venue: str
    pool_id: str
    token_in: Token
    token_out: Token
    amount_in: int
    amount_out: int
    fee: int
    price_impact_bps: int
    expires_at: float  # epoch seconds, on the clock that quoted

    def to_data(self) -> dict[str, Any]:
        """The shape API.md gives for ``routing`` event data (amounts as decimal strings)."""
        return {
            "venue": self.venue,
            "poolId": self.pool_id,
            "amountOut": to_decimal_string(self.amount_out, self.token_out),
            "fee": to_decimal_string(self.fee, self.token_in),
            "priceImpactBps": self.price_impact_bps,
        }


@dataclass(frozen=True)
class Fill:
    """The result of a swap that moved a pool."""

    venue: str
    pool_id: str
    amount_in: int
    amount_out: int
    fee: int


@dataclass(frozen=True)
class RouteLeg:
    quote: Quote
    min_amount_out: int


@dataclass(frozen=True)
class Route:
    """The router's decision: one leg per venue used (one unless the order is split)."""

    legs: tuple[RouteLeg, ...]
    quotes: tuple[Quote, ...]  # every usable quote considered, best first
    wrap_sol: bool
    unwrap_sol: bool
    rejected: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # venue + reason

    @property
    def amount_out(self) -> int:
        return sum(leg.quote.amount_out for leg in self.legs)

    @property
    def min_amount_out(self) -> int:
        return sum(leg.min_amount_out for leg in self.legs)

    @property
    def venue(self) -> str:
        return "+".join(leg.quote.venue for leg in self.legs)
