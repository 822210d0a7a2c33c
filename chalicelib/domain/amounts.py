"""Conversions between decimal token units ("1.5" SOL) and integer base units (lamports)."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_DOWN, Context, Decimal

from .errors import ValidationError
from .tokens import Token

__all__ = [
    "MAX_BASE_UNITS",
    "PRICE_SIGNIFICANT_DIGITS",
    "min_out_at_cap",
    "min_out_at_price",
    "parse_decimal",
    "price",
    "price_string",
    "to_base_units",
    "to_decimal_string",
]

_EXACT = Context(prec=60)  # wide enough for any amount that passes the size check


MAX_BASE_UNITS = 2**64 - 1  # an SPL token amount is a u64
# ASCII digits, an optional fraction: no sign, exponent, spaces, or other scripts' digits
# (Decimal would read "١٢" as 12 and "1e2" as 100; a wallet shows neither).
_DECIMAL_TEXT = re.compile(r"[0-9]{1,40}(?:\.[0-9]{1,40})?")


def parse_decimal(text: str, *, field: str) -> Decimal:
    """A plain decimal string such as ``"1.5"`` as a ``Decimal``; anything else names ``field``."""
    if not isinstance(text, str) or not _DECIMAL_TEXT.fullmatch(text):
        raise ValidationError(f'{field} must be a plain decimal string of ASCII digits such as "1.5"; '
                              f"got {text!r}", field=field)
    return Decimal(text)


def to_base_units(amount: str, token: Token, *, field: str = "amount") -> int:
    """Parse a decimal string into base units; reject what a wallet could not send.

    Exact: an amount with more decimals than the token has is refused, never rounded, and one
    beyond a u64 of base units is refused before any arithmetic could overflow.
    """
    value = parse_decimal(amount, field=field)
    if value <= 0:
        raise ValidationError(f"{field} must be greater than zero", field=field)
    _sign, digits, raw_exponent = value.as_tuple()
    exponent = int(raw_exponent)  # finite, so an int
    if exponent < -token.decimals and any(digits[exponent + token.decimals:]):
        raise ValidationError(f"{token.symbol} has {token.decimals} decimals; {amount} has more", field=field)
    if len(digits) + exponent + token.decimals > 20:  # more than 20 integer digits of base units
        raise ValidationError(f"{field} is larger than any {token.symbol} balance", field=field)
    base = int(value.scaleb(token.decimals, _EXACT))
    if base > MAX_BASE_UNITS:
        raise ValidationError(f"{field} is larger than any {token.symbol} balance", field=field)
    return base


def _decimals(token: Token) -> int:
    if not token.is_known:
        raise ValueError(f"{token.mint} has not launched: its decimals are unknown")
    return token.decimals


def to_decimal_string(base_units: int, token: Token) -> str:
    """Base units back to a plain decimal string, without exponent or trailing zeros."""
    _decimals(token)
    value = Decimal(base_units).scaleb(-token.decimals)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def price(amount_in: int, token_in: Token, amount_out: int, token_out: Token) -> Decimal:
    """Units of ``token_out`` per unit of ``token_in`` (e.g. USDC per SOL), to the precision
    the two amounts carry: ``token_in.decimals + token_out.decimals`` places."""
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    _decimals(token_in), _decimals(token_out)
    units_in = Decimal(amount_in).scaleb(-token_in.decimals, _EXACT)
    units_out = Decimal(amount_out).scaleb(-token_out.decimals, _EXACT)
    places = Decimal(1).scaleb(-(token_in.decimals + token_out.decimals))
    return _EXACT.divide(units_out, units_in).quantize(places, context=_EXACT)


# A price shown with fewer significant digits than this gets more places, up to the exact ones.
PRICE_SIGNIFICANT_DIGITS = 6


def price_string(amount_in: int, token_in: Token, amount_out: int, token_out: Token) -> str:
    """``price`` as API.md shows it (``executedPrice``): a plain decimal string, never an exponent,
    to the output token's precision, e.g. USDC's 6 decimals for a SOL→USDC order: ``152.64626``,
    not ``152.646260666666667``. Trailing zeros are dropped, as in amounts.

    Rounded down (toward zero), not half-even: the price is a quotient of exact amounts and a
    rounded one stands for them, so it never claims more than the order got: ``amount · price``
    never exceeds ``amountOut``, and a price shown at or above a limit really is at or above it.
    The exact amounts stay in ``amountIn``/``amountOut``.

    A price below one base unit of the output token (selling a token of tiny unit value) would
    round to ``0`` or to a digit or two; such a price keeps ``PRICE_SIGNIFICANT_DIGITS``
    significant digits instead, up to the exact ``token_in.decimals + token_out.decimals`` places.
    """
    exact = price(amount_in, token_in, amount_out, token_out)
    places = token_out.decimals
    if exact:
        places = max(places, min(PRICE_SIGNIFICANT_DIGITS - 1 - exact.adjusted(),
                                 token_in.decimals + token_out.decimals))
    rounded = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN, context=_EXACT)
    text = format(rounded, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def min_out_at_price(amount_in: int, token_in: Token, unit_price: Decimal, token_out: Token) -> int:
    """The least ``token_out`` base units that ``amount_in`` base units of ``token_in`` fetch at
    ``unit_price`` (``token_out`` per ``token_in``, in token units), rounded up: exact, so a
    fill of at least this many units is at the price or better."""
    _decimals(token_in), _decimals(token_out)
    exact = _EXACT.multiply(_EXACT.multiply(Decimal(amount_in), unit_price),
                            Decimal(1).scaleb(token_out.decimals - token_in.decimals))
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def min_out_at_cap(amount_in: int, token_in: Token, max_price: Decimal, token_out: Token) -> int:
    """The least ``token_out`` base units that ``amount_in`` base units of ``token_in`` must fetch
    for the price paid to be at most ``max_price`` (``token_in`` per ``token_out``, in token units):
    ``ceil(amount / maxPrice)`` in base units, in integers, exactly."""
    if max_price <= 0:
        raise ValueError("max_price must be positive")
    numerator, denominator = max_price.as_integer_ratio()
    shift = _decimals(token_out) - _decimals(token_in)
    top = amount_in * denominator * 10 ** max(shift, 0)
    bottom = numerator * 10 ** max(-shift, 0)
    return int(-(-top // bottom))
