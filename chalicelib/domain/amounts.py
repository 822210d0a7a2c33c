"""Conversions between decimal token units ("1.5" SOL) and integer base units (lamports)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from .errors import ValidationError
from .tokens import Token

__all__ = ["price", "to_base_units", "to_decimal_string"]


def to_base_units(amount: str, token: Token, *, field: str = "amount") -> int:
    """Parse a decimal string into base units; reject what a wallet could not send."""
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationError(f"{amount!r} is not a decimal number", field=field) from None
    if not value.is_finite():
        raise ValidationError("amount must be a finite number", field=field)
    if value <= 0:
        raise ValidationError("amount must be greater than zero", field=field)
    scaled = value.scaleb(token.decimals)
    if scaled != scaled.to_integral_value():
        raise ValidationError(
            f"{token.symbol} has {token.decimals} decimals; {amount} has more", field=field
        )
    return int(scaled)


def to_decimal_string(base_units: int, token: Token) -> str:
    """Base units back to a plain decimal string, without exponent or trailing zeros."""
    value = Decimal(base_units).scaleb(-token.decimals)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def price(amount_in: int, token_in: Token, amount_out: int, token_out: Token) -> Decimal:
    """Units of ``token_out`` per unit of ``token_in`` (e.g. USDC per SOL)."""
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    units_in = Decimal(amount_in).scaleb(-token_in.decimals)
    units_out = Decimal(amount_out).scaleb(-token_out.decimals)
    return (units_out / units_in).quantize(Decimal(1).scaleb(-token_out.decimals))
