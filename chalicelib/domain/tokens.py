"""The token registry: symbols, real mainnet mints and decimals."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownTokenError

__all__ = ["TOKENS", "WSOL_MINT", "Token", "get_token"]

WSOL_MINT = "So11111111111111111111111111111111111111112"


@dataclass(frozen=True)
class Token:
    symbol: str
    mint: str
    decimals: int

    @property
    def is_sol(self) -> bool:
        return self.mint == WSOL_MINT


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
