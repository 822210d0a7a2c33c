"""The rules schemathesis is told about GET /api/quotes, which its OpenAPI document cannot state."""

from __future__ import annotations

import pytest

from devstack.fuzz_hooks import quote_query_is_coherent

WSOL = "So11111111111111111111111111111111111111112"


@pytest.mark.parametrize(("query", "coherent"), [
    ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5"}, True),
    ({"tokenIn": "SOL", "tokenOut": "SOL", "amount": "1.5"}, False),
    ({"tokenIn": "SOL", "tokenOut": WSOL, "amount": "1.5"}, False),  # one token, two spellings
    ({"tokenIn": "SOL", "tokenOut": "USDC", "amount": "0.000000001"}, True),  # SOL has 9 decimals
    ({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "0.0000001"}, False),  # USDC has 6
    ({"tokenIn": "USDC", "tokenOut": "SOL", "amount": "1.5000000"}, True),  # zeros past them change nothing
    ({"tokenIn": "BONK", "tokenOut": "SOL", "amount": "1.000001"}, False),  # BONK has 5
    ({"tokenIn": "DOGE", "tokenOut": "USDC", "amount": "1.5"}, True),  # the schema's own business
    ({"tokenOut": "USDC", "amount": [1]}, True),
])
def test_a_quote_query_needs_two_tokens_and_an_amount_within_token_in_decimals(query: dict[str, object],
                                                                               coherent: bool) -> None:
    assert quote_query_is_coherent(query) is coherent


@pytest.mark.parametrize(("body", "kept"), [
    ({"type": "sniper", "tokenOut": "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"}, True),  # not trading
    ({"type": "sniper", "tokenOut": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"}, False),  # USDC's mint
    ({"type": "sniper", "tokenOut": WSOL}, False),
    ({"type": "market", "tokenOut": "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"}, True),  # not a sniper
    ({"type": "sniper", "tokenOut": 7}, True),  # the schema's own business
    ({"type": "sniper", "tokenOut": ["a"]}, True),
])
def test_a_sniper_watches_a_mint_that_is_not_trading(body: dict[str, object], kept: bool) -> None:
    from devstack.fuzz_hooks import sniper_mint_is_not_trading

    assert sniper_mint_is_not_trading(body) is kept
