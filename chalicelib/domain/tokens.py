"""The token registry: symbols, real mainnet mints and decimals."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownTokenError

__all__ = ["TOKENS", "UNKNOWN_DECIMALS", "WSOL_MINT", "Token", "get_token", "unlaunched"]

WSOL_MINT = "So11111111111111111111111111111111111111112"
# A mint nobody has launched yet (a sniper may watch one): its decimals are learnt when it launches.
UNKNOWN_DECIMALS = -1


@dataclass(frozen=True)
class Token:
    symbol: str
    mint: str
    decimals: int

    @property
    def is_sol(self) -> bool:
        return self.mint == WSOL_MINT

    @property
    def is_known(self) -> bool:
        """False for a mint not launched yet: no symbol but its mint, decimals unknown."""
        return self.decimals != UNKNOWN_DECIMALS


def unlaunched(mint: str) -> Token:
    """A mint that has no token yet, as an order watching it carries it until it launches: named
    by its mint, its decimals unknown (``UNKNOWN_DECIMALS``), so no amount of it can be written."""
    return Token(mint, mint, UNKNOWN_DECIMALS)


TOKENS: dict[str, Token] = {
    t.symbol: t
    for t in (
        Token("SOL", WSOL_MINT, 9),
        Token("USDC", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6),
        Token("USDT", "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", 6),
        Token("BONK", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5),
        Token("JUP", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6),
        Token("RAY", "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R", 6),
    )
}
_BY_MINT = {t.mint: t for t in TOKENS.values()}


def get_token(symbol_or_mint: str, *, field: str = "token") -> Token:
    """Look a token up by symbol (case-insensitive) or by mint address."""
    token = TOKENS.get(symbol_or_mint.upper()) or _BY_MINT.get(symbol_or_mint)
    if token is None:
        known = ", ".join(sorted(TOKENS))
        raise UnknownTokenError(f"unknown token {symbol_or_mint!r}; known: {known}", field=field)
    return token
