"""The public contract's request shapes (API.md), as pydantic models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "IDEMPOTENCY_KEY", "ClientOrderId", "ExecuteOrderRequest", "ListOrdersQuery", "QuoteQuery", "ValidationError",
    "WsMessage", "first_error",
]

_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
# An idempotency key, in the body (clientOrderId) or the Idempotency-Key header: ASCII letters,
# digits and ._:- only, 1-64 characters, so it can never carry a path, a space or a look-alike.
ClientOrderId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)]
IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(ClientOrderId)


class ExecuteOrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    type: Literal["market", "limit", "sniper"] = "market"
    tokenIn: StrictStr = Field(min_length=1, max_length=64)
    tokenOut: StrictStr = Field(min_length=1, max_length=64)
    # Amounts are decimal strings in token units; a JSON number would invite float rounding.
    amount: StrictStr = Field(min_length=1, max_length=40)
    slippageBps: StrictInt = Field(default=50, ge=1, le=5000)
    clientOrderId: ClientOrderId | None = None
    limitPrice: StrictStr | None = Field(default=None, max_length=40)
    maxPrice: StrictStr | None = Field(default=None, max_length=40)

    @model_validator(mode="after")
    def _prices_belong_to_their_type(self) -> ExecuteOrderRequest:
        # limitPrice is a limit order's, maxPrice a sniper's: on any other order they would be ignored.
        if self.limitPrice is not None and self.type != "limit":
            raise PydanticCustomError("price_for_type", "limitPrice applies to limit orders only",
                                      {"field": "limitPrice"})
        if self.maxPrice is not None and self.type != "sniper":
            raise PydanticCustomError("price_for_type", "maxPrice applies to sniper orders only",
                                      {"field": "maxPrice"})
        return self


class ListOrdersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["pending", "waiting", "routing", "building", "submitted", "confirmed", "failed",
                    "active"] | None = None
    limit: int = Field(default=50, ge=1, le=200)


class QuoteQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenIn: str = Field(min_length=1, max_length=64, examples=["SOL"])
    tokenOut: str = Field(min_length=1, max_length=64, examples=["USDC"])
    amount: str = Field(min_length=1, max_length=40, examples=["1.5"])
    slippageBps: int = Field(default=50, ge=1, le=5000)


class WsMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: Literal["subscribe", "unsubscribe", "execute", "ping"]
    orderId: StrictStr | None = Field(default=None, min_length=1, max_length=64)
    afterSeq: StrictInt | None = Field(default=None, ge=0)
    order: dict[str, Any] | None = None

    @field_validator("orderId")
    @classmethod
    def _order_id_shape(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("ord_"):
            raise ValueError("orderId looks like ord_…")
        return v


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(field, message) of the first problem, e.g. ("slippageBps", "Input should be ≤ 5000")."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or str((err.get("ctx") or {}).get("field", "body"))
    message = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        message = f"unknown field {field!r}"
    elif err.get("type") == "string_type" and field in ("amount", "limitPrice", "maxPrice"):
        message = f'{field} must be a decimal string such as "1.5", not a JSON number'
    return field, message
