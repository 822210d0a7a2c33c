"""What a sniper order watches for and checks: a new token's pool, and the safety checks sniper
traders run on it before they buy (mint and freeze authorities renounced, LP burned, a minimum
of SOL in the pool)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .amounts import to_decimal_string
from .tokens import WSOL_MINT, Token

__all__ = ["MAX_DELAY_SLOTS", "CheckFailure", "PoolLaunch", "SniperChecks"]

MAX_DELAY_SLOTS = 150  # 60 s of 400 ms slots: a blockhash's lifetime
_SOL = Token("SOL", WSOL_MINT, 9)


@dataclass(frozen=True)
class PoolLaunch:
    """A new token and the pool that makes it tradable, as the chain tells it: its mint account
    (authorities), its pool (venue, open time) and whether the pool's LP tokens were burned."""

    token: Token
    pool_id: str
    venue: str
    open_slot: int
    open_at_ms: int  # epoch ms: the pool trades from then on
    mint_renounced: bool
    freeze_renounced: bool
    lp_burned: bool

    def due_at_ms(self, delay_slots: int, slot_ms: int) -> int:
        """When an order waiting ``delay_slots`` after the open may buy (epoch ms)."""
        return self.open_at_ms + delay_slots * slot_ms


@dataclass(frozen=True)
class CheckFailure:
    check: str  # the field of ``checks`` that refused, e.g. ``freezeRenounced``
    found: str  # what was found, in words

    def __str__(self) -> str:
        return self.found


@dataclass(frozen=True)
class SniperChecks:
    """The checks of a sniper order (API.md's ``checks``): each one on by default but the
    liquidity, which only a ``minLiquidity`` (SOL) asks for."""

    mint_renounced: bool = True
    freeze_renounced: bool = True
    lp_burned: bool = True
    min_liquidity: Decimal | None = None  # SOL

    def to_data(self) -> dict[str, Any]:
        return {"mintRenounced": self.mint_renounced, "freezeRenounced": self.freeze_renounced,
                "lpBurned": self.lp_burned,
                "minLiquidity": None if self.min_liquidity is None else format(self.min_liquidity.normalize(), "f")}

    @classmethod
    def from_data(cls, raw: Mapping[str, Any] | None) -> SniperChecks:
        raw = raw or {}
        minimum = raw.get("minLiquidity")
        return cls(bool(raw.get("mintRenounced", True)), bool(raw.get("freezeRenounced", True)),
                   bool(raw.get("lpBurned", True)), None if minimum in (None, "") else Decimal(str(minimum)))

    def failures(self, launch: PoolLaunch, pool_lamports: int) -> list[CheckFailure]:
        """Every check the pool fails, in the order API.md lists them (none: it may buy)."""
        found: list[CheckFailure] = []
        if self.mint_renounced and not launch.mint_renounced:
            found.append(CheckFailure("mintRenounced", "mint authority is not renounced"))
        if self.freeze_renounced and not launch.freeze_renounced:
            found.append(CheckFailure("freezeRenounced", "freeze authority is not renounced"))
        if self.lp_burned and not launch.lp_burned:
            found.append(CheckFailure("lpBurned", "LP tokens are not burned"))
        if self.min_liquidity is not None and Decimal(pool_lamports).scaleb(-_SOL.decimals) < self.min_liquidity:
            minimum = format(self.min_liquidity.normalize(), "f")
            found.append(CheckFailure("minLiquidity", f"pool holds {to_decimal_string(pool_lamports, _SOL)} SOL, "
                                                      f"less than the {minimum} minimum"))
        return found
