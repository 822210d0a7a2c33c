"""What every simulated pool offers the venue wrapping it: a pure simulation and a commit.

``simulate`` never changes the pool; it returns the result together with the state the pool
would have afterwards, so a venue can check the result (slippage) before ``commit``-ing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..domain import Token

__all__ = ["Pool", "SwapResult"]


@dataclass(frozen=True)
class SwapResult:
    amount_in: int
    amount_out: int
    fee: int  # in base units of the input token
    price_impact_bps: int
    state: Any  # the pool's state after the swap; opaque to the venue


class Pool(Protocol):
    pool_id: str
    token_x: Token
    token_y: Token

    def simulate(self, token_in: Token, amount_in: int, now: float) -> SwapResult: ...

    def commit(self, result: SwapResult, now: float) -> None: ...

    def spot_price(self, token_in: Token) -> Any:
        """Output base units per input base unit at the pool's current state (a ``Decimal``)."""
        ...

    def reserves(self) -> tuple[int, int]:
        """Base units of ``token_x`` and ``token_y`` the pool holds for trading (fees excluded)."""
        ...
