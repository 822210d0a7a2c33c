"""The simulated market as API.md shows it: ``GET /api/markets`` and ``POST /api/sim/launches``."""

from __future__ import annotations

import os
from collections import defaultdict
from decimal import Decimal
from typing import Any

from ..domain import Token, ValidationError, parse_decimal, to_base_units, to_decimal_string
from ..routing.launches import SOL, Launch, LaunchTerms
from ..routing.market import SimulatedMarket
from .models import LaunchRequest

__all__ = ["launch_token", "markets_view", "price_text"]

MAX_TOKEN_UNITS = 2**64 - 1


def price_text(value: Decimal, significant: int = 12) -> str:
    """A price as a plain decimal string with at most ``significant`` significant digits."""
    if value <= 0:
        return "0"
    quantum = Decimal(1).scaleb(value.adjusted() - significant + 1)
    text = format(value.quantize(quantum), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _token(token: Token) -> dict[str, Any]:
    return {"symbol": token.symbol, "mint": token.mint, "decimals": token.decimals}


def markets_view(market: SimulatedMarket) -> dict[str, Any]:
    """Every pair with each venue's price and liquidity now, launched tokens included."""
    now_ms = market.elapsed_ms()
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    venues: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for spec, pool, launch in market.markets():
        base, quote = spec.token_x, spec.token_y
        key = (base.mint, quote.mint)
        reserve_base, reserve_quote = pool.reserves()
        spot: Decimal = pool.spot_price(base) * Decimal(10) ** (base.decimals - quote.decimals)
        venues[key].append({
            "venue": spec.venue,
            "pool": spec.pool_id,
            "price": price_text(spot),
            "liquidity": {"base": to_decimal_string(reserve_base, base),
                          "quote": to_decimal_string(reserve_quote, quote)},
            "open": now_ms >= spec.open_ms,
            "openSlot": market.slot_at(spec.open_ms) if launch is not None else None,
        })
        pairs.setdefault(key, {"base": _token(base), "quote": _token(quote), "launch": _launch(market, launch)})
    markets = [{**pair, "venues": sorted(venues[key], key=lambda v: v["venue"])} for key, pair in pairs.items()]
    markets.sort(key=lambda m: (m["launch"] is not None, m["base"]["symbol"], m["quote"]["symbol"]))
    return {"slot": market.slot_at(now_ms), "markets": markets}


def _launch(market: SimulatedMarket, launch: Launch | None) -> dict[str, Any] | None:
    if launch is None:
        return None
    return {"openSlot": market.slot_at(launch.open_ms), "launchedSlot": market.slot_at(launch.created_ms),
            "mintRenounced": launch.mint_renounced, "freezeRenounced": launch.freeze_renounced,
            "lpBurned": launch.lp_burned, "launchPrice": price_text(launch.price)}


def launch_token(market: SimulatedMarket, request: LaunchRequest) -> dict[str, Any]:
    """Launch a token as ``request`` says; 201's body. Raises ``ValidationError`` naming the field."""
    liquidity = to_base_units(request.liquidity, SOL, field="liquidity")
    price = parse_decimal(request.price, field="price")
    if price <= 0:
        raise ValidationError("price must be greater than zero", field="price")
    terms = LaunchTerms(request.symbol, request.decimals, request.venue, liquidity, price, request.openInSlots,
                        request.mintRenounced, request.freezeRenounced, request.lpBurned)
    amount = Decimal(liquidity) / (price * Decimal(10) ** (SOL.decimals - request.decimals))
    if amount >= MAX_TOKEN_UNITS:
        raise ValidationError("at this price the pool would hold more tokens than a u64 can count", field="price")
    launch = market.launch(terms, nonce=os.urandom(32))
    return {"mint": launch.token.mint, "pool": launch.pool_id, "venue": launch.venue,
            "openSlot": market.slot_at(launch.open_ms), "symbol": launch.token.symbol,
            "decimals": launch.token.decimals}
