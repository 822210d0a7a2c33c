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
