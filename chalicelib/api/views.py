"""Orders as API.md shows them: camelCase, amounts as decimal strings in token units."""

from __future__ import annotations

from typing import Any

from ..domain import Order, OrderType, to_decimal_string

__all__ = ["order_view", "snapshot_message"]


def order_view(order: Order) -> dict[str, Any]:
    return {
        "orderId": order.order_id,
        "clientOrderId": order.client_order_id,
        "type": order.type.value,
        "tokenIn": order.token_in.symbol,
        "tokenOut": order.token_out.symbol,
        "amount": to_decimal_string(order.amount_in, order.token_in),
        "slippageBps": order.slippage_bps,
        "status": order.status.value,
        "seq": order.version,
        "createdAt": order.created_at,
        "updatedAt": order.updated_at,
        "attempts": order.attempts,
        "venue": order.venue,
        "quotes": order.quotes,
        "minAmountOut": _units(order.min_amount_out, order),
        "amountOut": _units(order.amount_out, order),
        "executedPrice": order.executed_price,
        "signature": order.signature,
        "txHash": order.tx_hash,
        "error": order.error,
        "limitPrice": order.limit_price,
        "maxPrice": order.max_price,
        "watchMint": order.token_out.mint if order.type is OrderType.SNIPER else None,
        "checks": order.checks.to_data() if order.checks is not None else None,
        "delaySlots": order.delay_slots if order.type is OrderType.SNIPER else None,
        "expiresAt": order.expires_at,
        "history": [e.to_dict() for e in order.history],
    }


def _units(amount: int | None, order: Order) -> str | None:
    return None if amount is None else to_decimal_string(amount, order.token_out)


def snapshot_message(order: Order) -> dict[str, Any]:
    return {
        "type": "order.snapshot",
        "orderId": order.order_id,
        "status": order.status.value,
        "seq": order.version,
        "order": order_view(order),
    }
