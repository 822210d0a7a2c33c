"""The protocols every venue implements: quotes, swaps, and a snapshot of its pool."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from ..domain import Fill, Quote, Token

__all__ = ["Venue", "VenueSnapshot"]


class VenueSnapshot(Protocol):
    """One venue's pool for a pair, as read once: what any trade would get from that state.

    A matcher weighing many orders reads each pool once and quotes every order against the same
    state, instead of asking the venue once per order.
    """

    venue: str

    def marginal_price(self, token_in: Token, token_out: Token) -> Decimal:
        """``token_out`` per ``token_in`` (token units) of an infinitely small trade, before fees:
        no trade of any size gets a better price from this state."""
        ...

    def quote(self, token_in: Token, token_out: Token, amount_in: int) -> Quote:
        """A full-size quote against this state (raises like ``Venue.quote``)."""
        ...


class Venue(Protocol):
    """A DEX venue. Amounts are integer base units.

    ``quote`` never changes state; it raises ``QuoteTimeoutError`` or ``RpcError``
    (transient) or ``InsufficientLiquidityError``/``NoRouteError`` when it cannot serve.
    ``swap`` re-prices against the pool's state *now*, moves the pool and raises
    ``SlippageExceededError`` (pool untouched) when the output would fall below the minimum.
    ``snapshot`` reads the pair's pool once (it raises like ``quote``).
    """

    name: str

    def quote(self, token_in: Token, token_out: Token, amount_in: int) -> Quote: ...

    def swap(self, quote: Quote, min_amount_out: int) -> Fill: ...

    def snapshot(self, token_a: Token, token_b: Token) -> VenueSnapshot: ...
