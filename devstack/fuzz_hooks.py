"""What the REST contract says that its OpenAPI document cannot, told to schemathesis.

Loaded by schemathesis (``hooks`` in ``schemathesis.toml``) for ``make fuzz`` and the bounded run
in the integration tier. Every rule the document *can* state lives in the document, generated
from the models; only these remain, each with the reason OpenAPI cannot express it.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from chalicelib.domain import TOKENS

_DECIMALS = {name: token.decimals for token in TOKENS.values() for name in (token.symbol, token.mint)}
_TOKEN = {name: token.mint for token in TOKENS.values() for name in (token.symbol, token.mint)}


def quote_query_is_coherent(query: dict[str, Any]) -> bool:
    """``GET /api/quotes``: tokenIn and tokenOut differ, and the amount has no more decimals than
    tokenIn has (zeros after them aside). OpenAPI describes each query parameter on its own and
    has no way to relate two of them; the request body of ``POST /api/orders/execute`` states the
    same two rules in its schema (``not`` and ``anyOf``), since a body is one JSON Schema."""
    token_in, token_out, amount = query.get("tokenIn"), query.get("tokenOut"), query.get("amount")
    if isinstance(token_in, str) and isinstance(token_out, str) and _TOKEN.get(token_in, token_in) == _TOKEN.get(
            token_out, token_out):
        return False
    if isinstance(token_in, str) and isinstance(amount, str) and token_in in _DECIMALS and "." in amount:
        places = len(amount.split(".", 1)[1].rstrip("0"))
        return places <= _DECIMALS[token_in]
    return True


# Positive and negative cases alike: a query that breaks these rules is answered 400 whatever else
# it does, so it can only hide what the case was generated to test.
@schemathesis.hook.apply_to(path="/api/quotes", method="GET")
def filter_case(context: Any, case: Any) -> bool:
    return quote_query_is_coherent(dict(case.query or {}))
