"""New tokens on the simulated cluster: a mint, its authorities, and one pool paired with SOL that
opens at a slot (a Raydium AMM v4 pool's open time, a Meteora DLMM pair's activation).

A launch is shared state like every pool (``sim:launch:<mint>``, and the sorted set
``sim:launches`` of mints scored by the millisecond, since genesis, at which their pool opens),
so every process learns the token and can quote, route and swap it once its pool is open.
Before that the pool exists but refuses every trade, as on chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from ..domain import WSOL_MINT, Token

__all__ = ["LAUNCHES_KEY", "LAUNCH_TTL_SECONDS", "SOL", "Launch", "LaunchTerms", "launch_key"]

LAUNCHES_KEY = "sim:launches"
LAUNCH_TTL_SECONDS = 30 * 86_400
SOL = Token("SOL", WSOL_MINT, 9)


def launch_key(mint: str) -> str:
    return f"sim:launch:{mint}"


@dataclass(frozen=True)
class LaunchTerms:
    """What a launcher chooses."""

    symbol: str
    decimals: int
    venue: str
    liquidity: int  # lamports of SOL paired into the pool
    price: Decimal  # SOL per whole token when the pool opens
    open_in_slots: int
    mint_renounced: bool
    freeze_renounced: bool
    lp_burned: bool


@dataclass(frozen=True)
class Launch:
    token: Token
    venue: str
    pool_id: str
    created_ms: int  # since genesis
    open_ms: int  # since genesis: the pool trades from then on
    liquidity: int  # lamports at launch
    price: Decimal  # SOL per whole token at launch
    mint_renounced: bool
    freeze_renounced: bool
    lp_burned: bool

    @property
    def target(self) -> Decimal:
        """The launch price as the pool counts it: lamports per base unit of the token."""
        return self.price * Decimal(10) ** (SOL.decimals - self.token.decimals)

    @property
    def token_amount(self) -> int:
        """Base units of the token that ``liquidity`` lamports are worth at the launch price."""
        return int(Decimal(self.liquidity) / self.target)

    def dump(self) -> str:
        return json.dumps({
            "s": self.token.symbol, "m": self.token.mint, "d": self.token.decimals, "v": self.venue,
            "p": self.pool_id, "c": self.created_ms, "o": self.open_ms, "l": self.liquidity, "px": str(self.price),
            "a": [self.mint_renounced, self.freeze_renounced, self.lp_burned],
        }, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> Launch:
        d = json.loads(raw)
        mint_renounced, freeze_renounced, lp_burned = (bool(x) for x in d["a"])
        return cls(Token(str(d["s"]), str(d["m"]), int(d["d"])), str(d["v"]), str(d["p"]), int(d["c"]),
                   int(d["o"]), int(d["l"]), Decimal(d["px"]), mint_renounced, freeze_renounced, lp_burned)
