"""What the REST contract says that its OpenAPI document cannot, told to schemathesis.

Loaded by schemathesis (``hooks`` in ``schemathesis.toml``) for ``make fuzz`` and the bounded run
in the integration tier. Every rule the document *can* state lives in the document, generated
from the models; only these remain, each with the reason OpenAPI cannot express it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import schemathesis

from chalicelib.domain import (
    MAX_WAIT,
    TOKENS,
    DomainError,
    min_out_at_price,
    parse_decimal,
    to_base_units,
)
from chalicelib.domain.amounts import MAX_BASE_UNITS

_DECIMALS = {name: token.decimals for token in TOKENS.values() for name in (token.symbol, token.mint)}
_LISTED = {name: token for token in TOKENS.values() for name in (token.symbol, token.mint)}
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


def expiry_is_in_the_window(body: Any, now: datetime | None = None) -> bool:
    """An order that waits names an ``expiresAt`` after now and at most 30 days ahead (API.md). JSON
    Schema can say that a string is a date-time, never how it relates to the moment it is sent."""
    if not isinstance(body, dict) or not isinstance(body.get("expiresAt"), str):
        return True
    try:
        at = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    except ValueError:
        return True  # not a date-time: the schema's own business
    if at.tzinfo is None:
        return True
    moment = now or datetime.now(UTC)
    return moment + timedelta(minutes=1) < at < moment + MAX_WAIT - timedelta(minutes=1)


def limit_fits_a_u64(body: Any) -> bool:
    """A limit order's least amount out, ``amount · limitPrice`` in base units of tokenOut, is an SPL
    token amount: a u64. Two fields multiplied, which JSON Schema cannot bound."""
    if not isinstance(body, dict) or body.get("type") != "limit":
        return True
    token_in, token_out = _LISTED.get(str(body.get("tokenIn"))), _LISTED.get(str(body.get("tokenOut")))
    amount, limit = body.get("amount"), body.get("limitPrice")
    if token_in is None or token_out is None or not isinstance(amount, str) or not isinstance(limit, str):
        return True
    try:
        amount_in = to_base_units(amount, token_in)
        return bool(min_out_at_price(amount_in, token_in, parse_decimal(limit, field="limitPrice"),
                                     token_out) <= MAX_BASE_UNITS)
    except DomainError:
        return True  # refused for a reason of its own, which the schema states


def sniper_mint_is_not_trading(body: Any) -> bool:
    """A sniper order watches a mint that has no pool yet: the schema can say that ``tokenOut`` is a
    base58 mint, not which mints trade now (the market's state: the listed tokens, and launches
    whose pool has opened). The listed tokens' mints are left out; a fuzzer's random mint never
    names a launched one."""
    if not isinstance(body, dict) or body.get("type") != "sniper":
        return True
    mint = body.get("tokenOut")
    return not (isinstance(mint, str) and mint in _TOKEN)


@schemathesis.hook.apply_to(path="/api/orders/execute", method="POST")
def filter_case(context: Any, case: Any) -> bool:  # noqa: F811 (schemathesis registers each by its name)
    return (expiry_is_in_the_window(case.body) and limit_fits_a_u64(case.body)
            and sniper_mint_is_not_trading(case.body))


def launch_makes_a_pool(body: Any) -> bool:
    """A launch pairs ``liquidity`` SOL with as many tokens as that buys at ``price``: at least one
    base unit of the token, and fewer than a u64 counts. Three fields related, which JSON Schema
    cannot state."""
    if not isinstance(body, dict):
        return True
    try:
        lamports = to_base_units(str(body.get("liquidity")), TOKENS["SOL"])
        price = parse_decimal(str(body.get("price", "0.00002")), field="price")
        decimals = int(body.get("decimals", 6))
    except (DomainError, TypeError, ValueError):
        return True
    if price <= 0 or not 0 <= decimals <= 9:
        return True
    tokens = Decimal(lamports) / (price * Decimal(10) ** (9 - decimals))
    return Decimal(1) <= tokens < MAX_BASE_UNITS


@schemathesis.hook.apply_to(path="/api/sim/launches", method="POST")
def filter_case(context: Any, case: Any) -> bool:  # noqa: F811 (schemathesis registers each by its name)
    return launch_makes_a_pool(case.body)
