"""What the engine answers, as pydantic models: the response half of API.md.

The request half lives in ``models.py``. These models are the source of the OpenAPI and AsyncAPI
documents, and the tests validate real responses against them, so a field the code adds without
the contract (or the contract promises without the code) fails a test. They forbid unknown
fields for that reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SERVER_MESSAGES",
    "AcceptedOrder",
    "ErrorDetail",
    "ErrorMessage",
    "ErrorResponse",
    "Health",
    "LaunchInfo",
    "LaunchResponse",
    "Liquidity",
    "Market",
    "MarketsResponse",
    "OrderAcceptedMessage",
    "OrderCancelledMessage",
    "OrderEventView",
    "OrderList",
    "OrderSnapshotMessage",
    "OrderStatusMessage",
    "OrderStatusName",
    "OrderUnsubscribedMessage",
    "OrderView",
    "PongMessage",
    "QuoteView",
    "QuotesResponse",
    "RejectedQuote",
    "RouteView",
    "SniperChecksView",
    "TokenView",
    "VenueMarket",
]

OrderStatusName = Literal["pending", "waiting", "routing", "building", "submitted", "confirmed", "failed",
                          "expired", "cancelled"]
_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"


def _decimal(description: str | None = None) -> Any:
    """A decimal string field (amounts and prices are never JSON numbers)."""
    return Field(pattern=_DECIMAL, examples=["1.5"], description=description)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Model):
    code: str = Field(examples=["validation_error"], description="Stable, machine-readable reason.")
    message: str = Field(examples=["slippageBps must be between 1 and 5000"])
    field: str | None = Field(default=None, examples=["slippageBps"],
                              description="The request field (or header) the error is about, when there is one.")


class ErrorResponse(_Model):
    """Every error of every route, unknown routes and methods included."""

    error: ErrorDetail


class Health(_Model):
    status: Literal["ok", "degraded"]
    checks: dict[str, str] = Field(examples=[{"redis": "ok", "ordersTable": "ok", "queue": "ok"}])


class AcceptedOrder(_Model):
    orderId: str = Field(pattern=r"^ord_[0-9a-z]{26}$", examples=["ord_01jd5x3k9q7v8w2m4n6p8r0t2y"])
    status: OrderStatusName = Field(examples=["pending"])
    clientOrderId: str | None = Field(examples=["my-order-1"])
    wsUrl: str = Field(examples=["ws://127.0.0.1:8001/?orderId=ord_01jd5x3k9q7v8w2m4n6p8r0t2y"],
                       description="Where to watch the order: the WebSocket API, subscribed to this order.")


class QuoteView(_Model):
    venue: str = Field(examples=["raydium"])
    poolId: str
    amountOut: str = _decimal()
    fee: str = _decimal("In units of tokenIn.")
    priceImpactBps: int = Field(ge=0)


class OrderEventView(_Model):
    seq: int = Field(ge=1, description="1 for pending, then one more per status.")
    status: OrderStatusName
    at: str = Field(examples=["2026-11-25T17:46:51.821Z"])
    data: dict[str, Any] = Field(description="What this status carries; see API.md ('data by status').")


class SniperChecksView(_Model):
    mintRenounced: bool
    freezeRenounced: bool
    lpBurned: bool
    minLiquidity: str | None = Field(default=None, pattern=_DECIMAL, description="Least SOL in the pool.")


class OrderView(_Model):
    orderId: str
    clientOrderId: str | None
    type: Literal["market", "limit", "sniper"]
    tokenIn: str = Field(examples=["SOL"])
    tokenOut: str = Field(examples=["USDC"], description="The token's symbol; a sniper's mint until its token "
                          "launches.")
    amount: str = _decimal()
    slippageBps: int
    status: OrderStatusName
    seq: int = Field(ge=1, description="The seq of the latest status.")
    createdAt: str
    updatedAt: str
    attempts: int = Field(ge=0)
    venue: str | None
    quotes: list[QuoteView]
    minAmountOut: str | None
    amountOut: str | None
    executedPrice: str | None = Field(description="tokenOut per tokenIn, a plain decimal string.")
    signature: str | None
    txHash: str | None
    error: dict[str, Any] | None = Field(description="code, message, attempt, retryable; chainError: the chain's own "
                                         "error when it refused the transaction")
    limitPrice: str | None = Field(default=None, pattern=_DECIMAL, examples=["160"],
                                   description="A limit order's least tokenOut per tokenIn.")
    maxPrice: str | None = Field(default=None, pattern=_DECIMAL, examples=["0.00002"],
                                 description="A sniper order's most tokenIn (SOL) per tokenOut.")
    watchMint: str | None = Field(default=None, description="The mint a sniper order watches (its tokenOut).")
    checks: SniperChecksView | None = Field(default=None, description="A sniper order's checks.")
    delaySlots: int | None = Field(default=None, ge=0, description="A sniper order's slots to wait after the "
                                   "pool opens.")
    expiresAt: str | None = Field(default=None, examples=["2026-12-01T00:00:00.000Z"],
                                  description="When an order that waits ends `expired`.")
    history: list[OrderEventView]


class OrderList(_Model):
    orders: list[OrderView]
    count: int = Field(ge=0)


class RejectedQuote(_Model):
    venue: str
    code: str
    message: str


class RouteView(_Model):
    venue: str
    amountOut: str = _decimal()
    minAmountOut: str = _decimal()
    slippageBps: int
    wrapSol: bool
    unwrapSol: bool


class QuotesResponse(_Model):
    tokenIn: str
    tokenOut: str
    amount: str
    quotes: list[QuoteView] = Field(description="Every usable quote, best first.")
    rejected: list[RejectedQuote]
    route: RouteView | None = Field(description="What the router would pick now; null when no venue quotes.")


# -- the simulated market ---------------------------------------------------------------------------


class TokenView(_Model):
    symbol: str
    mint: str
    decimals: int


class Liquidity(_Model):
    base: str = _decimal("Units of the base token in the pool.")
    quote: str = _decimal("Units of the quote token in the pool.")


class VenueMarket(_Model):
    venue: str = Field(examples=["raydium"])
    pool: str
    price: str = _decimal("Quote per base at the pool's current state (spot, before fees).")
    liquidity: Liquidity
    open: bool = Field(description="False until a launched pool opens.")
    openSlot: int | None = Field(description="The slot a launched pool opens at.")


class LaunchInfo(_Model):
    openSlot: int
    launchedSlot: int
    mintRenounced: bool
    freezeRenounced: bool
    lpBurned: bool
    launchPrice: str = _decimal("SOL per whole token at launch.")


class Market(_Model):
    base: TokenView
    quote: TokenView
    venues: list[VenueMarket]
    launch: LaunchInfo | None = Field(description="For a token launched on the simulated cluster.")


class MarketsResponse(_Model):
    slot: int = Field(description="The cluster's current slot.")
    markets: list[Market]


class LaunchResponse(_Model):
    mint: str = Field(description="The new token's mint (base58).")
    pool: str
    venue: str
    openSlot: int
    symbol: str
    decimals: int


# -- WebSocket: what the engine sends ---------------------------------------------------------------


class OrderAcceptedMessage(_Model):
    """The answer to an ``execute`` action; the order's statuses follow on the same socket."""

    type: Literal["order.accepted"]
    orderId: str
    clientOrderId: str | None
    status: OrderStatusName
    created: bool = Field(description="False when the idempotency key named an order that already existed.")


class OrderSnapshotMessage(_Model):
    """The first message of a subscription (without ``afterSeq``): the order as it is now."""

    type: Literal["order.snapshot"]
    orderId: str
    status: OrderStatusName
    seq: int = Field(ge=1)
    order: OrderView


class OrderStatusMessage(_Model):
    """One status the order reached, in seq order; after a fault one may come twice with the same seq."""

    type: Literal["order.status"]
    orderId: str
    status: OrderStatusName
    seq: int = Field(ge=1)
    at: str
    data: dict[str, Any] = Field(description="See API.md, 'data by status'.")


class OrderUnsubscribedMessage(_Model):
    type: Literal["order.unsubscribed"]
    orderId: str


class OrderCancelledMessage(_Model):
    """The answer to a ``cancel`` action that ended the order; its ``cancelled`` status (that seq)
    also reaches the order's subscribers as an ``order.status``."""

    type: Literal["order.cancelled"]
    orderId: str
    seq: int = Field(ge=1, description="The seq of the order's cancelled status.")


class ErrorMessage(_Model):
    """A message or action that could not be served; the socket stays open."""

    type: Literal["error"]
    code: str = Field(examples=["already_subscribed", "not_found", "validation_error", "unknown_action"])
    message: str
    field: str | None = None
    orderId: str | None = None
    status: int | None = Field(default=None, description="For a refused `execute`: the HTTP status POST would give.")
    retryAfter: int | None = Field(default=None, description="For a rate-limited `execute`: seconds to wait.")


class PongMessage(_Model):
    type: Literal["pong"]


SERVER_MESSAGES: tuple[type[BaseModel], ...] = (
    OrderAcceptedMessage, OrderSnapshotMessage, OrderStatusMessage, OrderUnsubscribedMessage, OrderCancelledMessage,
    ErrorMessage,
    PongMessage,
)
