"""The one protocol every venue implements."""

from __future__ import annotations

from typing import Protocol

from ..domain import Fill, Quote, Token

__all__ = ["Venue"]


class Venue(Protocol):
    """A DEX venue. Amounts are integer base units.

    ``quote`` never changes state; it raises ``QuoteTimeoutError`` or ``RpcError``
    (transient) or ``InsufficientLiquidityError``/``NoRouteError`` when it cannot serve.
    ``swap`` re-prices against the pool's state *now*, moves the pool and raises
    ``SlippageExceededError`` (pool untouched) when the output would fall below the minimum.
    """

    name: str

    def quote(self, token_in: Token, token_out: Token, amount_in: int) -> Quote: ...

    def swap(self, quote: Quote, min_amount_out: int) -> Fill: ...
