"""The public contract's request shapes (API.md), as pydantic models."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    RootModel,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from ..domain import TOKENS
from ..domain.orders import SUPPORTED_TYPES

__all__ = [
    "CLIENT_ACTIONS",
    "IDEMPOTENCY_KEY",
    "ORDER_REQUESTS",
    "CancelAction",
    "ClientOrderId",
    "ExecuteAction",
    "ExecuteOrderRequest",
    "LaunchRequest",
    "LimitOrderRequest",
    "ListOrdersQuery",
    "MarketOrderRequest",
    "OrderRequest",
    "PingAction",
    "QuoteQuery",
    "SniperChecks",
    "SniperOrderRequest",
    "SubscribeAction",
    "UnsubscribeAction",
    "ValidationError",
    "WsMessage",
    "error_code",
    "first_error",
    "parse_order_body",
    "supported_order_requests",
]

_ID_PATTERN = r"^[A-Za-z0-9._:\-]+$"
# An idempotency key, in the body (clientOrderId) or the Idempotency-Key header: ASCII letters,
# digits and ._:- only, 1-64 characters, so it can never carry a path, a space or a look-alike.
ClientOrderId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=_ID_PATTERN)]
IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(ClientOrderId)


_DECIMAL = r"^[0-9]+(\.[0-9]+)?$"
# A decimal above zero: a digit other than 0 before the point, or after it (no lookahead needed).
_POSITIVE_DECIMAL = r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$"
_BASE58_MINT = r"^[1-9A-HJ-NP-Za-km-z]{32,44}$"
_MAX_DECIMALS = max(t.decimals for t in TOKENS.values())


def _amount_pattern(decimals: int, trailing_zeros: bool = False) -> str:
    """Amounts above zero and below 10⁹ token units, with at most ``decimals`` decimals (zeros after
    them allowed when ``trailing_zeros``: "1.5000000" USDC is 1.5 USDC). Below 1, one of the decimals
    is not zero: "0.10" but not "0.00", said without lookahead, which not every regex engine has."""
    zeros = "0*" if trailing_zeros else ""
    below_one = "|".join(f"{'0' * k}[1-9]" + (f"[0-9]{{0,{decimals - 1 - k}}}" if k < decimals - 1 else "")
                         for k in range(decimals))
    return rf"^([1-9][0-9]{{0,8}}(\.[0-9]{{1,{decimals}}}{zeros})?|0\.({below_one}){zeros})$"


# Any listed token's amount; each token then allows only as many decimals as it has (see _cross_field_rules).
_AMOUNT = _amount_pattern(_MAX_DECIMALS)


def _token_names() -> list[str]:
    return [t.symbol for t in TOKENS.values()] + [t.mint for t in TOKENS.values()]


def _spellings() -> list[list[str]]:
    return [[t.symbol, t.mint] for t in TOKENS.values()]


_MINT = re.compile(_BASE58_MINT)


def _listed(value: str) -> str:
    """A listed token, spelled exactly as the schema's enum lists it (symbol or mint), or the mint
    of a token launched on the simulated cluster (whether it is one is the market's to say: the
    schema lists only the listed tokens, which every stage has)."""
    if value not in _token_names() and not _MINT.fullmatch(value):
        known = ", ".join(sorted(TOKENS))
        raise PydanticCustomError("unknown_token", "unknown token {token}; known: {known}, or a launched token's mint",
                                  {"token": repr(value), "known": known})
    return value


ListedToken = Annotated[StrictStr, AfterValidator(_listed)]


def _whole_number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# An integer as JSON Schema counts one: 50, or 50.0 (a number without a fraction); never "50" or true.
JsonInt = Annotated[StrictInt, BeforeValidator(_whole_number)]


def _digits(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


# An integer in a query string: ASCII digits only (not " 5", "+5", "5_0" or "5.0", which int() would take).
QueryInt = Annotated[StrictInt, BeforeValidator(_digits)]


def _cross_field_rules(schema: dict[str, Any]) -> None:
    """The schema says what the code checks across fields: tokenIn and tokenOut name two different
    tokens, and the amount has no more decimals than tokenIn has (zeros after them aside)."""
    same = [{"properties": {"tokenIn": {"const": a}, "tokenOut": {"const": b}}, "required": ["tokenIn", "tokenOut"]}
            for spellings in _spellings() for a in spellings for b in spellings]
    schema["not"] = {"anyOf": same}
    by_decimals: dict[int, list[str]] = {}
    for token in TOKENS.values():
        by_decimals.setdefault(token.decimals, []).extend([token.symbol, token.mint])
    schema["anyOf"] = [
        {"properties": {"tokenIn": {"enum": names}, "amount": {"pattern": _amount_pattern(decimals, True)}},
         "required": ["tokenIn", "amount"]}
        for decimals, names in sorted(by_decimals.items(), reverse=True)
    ]


def _listed_token(description: str, example: str) -> Any:
    names: list[Any] = list(_token_names())
    return Field(min_length=1, max_length=64, description=description,
                 json_schema_extra={"enum": names}, examples=[example])


class _OrderRequest(BaseModel):
    # Nothing is trimmed or case-folded: what the schema refuses, the code refuses.
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_cross_field_rules)

    tokenIn: ListedToken = _listed_token("The token sold: a listed symbol (SOL, USDC, …) or its mint.", "SOL")
    tokenOut: ListedToken = _listed_token("The token bought: a listed symbol or its mint.", "USDC")
    # Amounts are decimal strings in token units; a JSON number would invite float rounding.
    amount: StrictStr = Field(min_length=1, max_length=40, pattern=_AMOUNT, examples=["1.5"],
                              description="How much tokenIn, in token units (\"1.5\" SOL), above 0 and below 10⁹, "
                              "with at most as many decimals as tokenIn has (SOL 9, USDC 6, BONK 5, …).")
    slippageBps: JsonInt = Field(default=50, ge=1, le=5000, description="Tolerated slippage, basis points.")
    clientOrderId: ClientOrderId | None = Field(default=None, description="Idempotency key.")


def _expires_at() -> Any:
    return Field(default=None, description="When the order stops waiting and ends `expired`: at most 30 days "
                 "ahead, never in the past (default: 24 h after it is accepted).",
                 examples=["2026-12-01T00:00:00Z"])


class MarketOrderRequest(_OrderRequest):
    """Execute now, at the best net price the venues offer."""

    type: Literal["market"] = "market"


class LimitOrderRequest(_OrderRequest):
    """Wait until a full-size quote reaches ``limitPrice`` (least tokenOut per tokenIn), then execute."""

    type: Literal["limit"]
    limitPrice: StrictStr = Field(min_length=1, max_length=40, pattern=_POSITIVE_DECIMAL,
                                  description="Least tokenOut per tokenIn accepted, above 0.", examples=["160"])
    expiresAt: AwareDatetime | None = _expires_at()


class SniperChecks(BaseModel):
    """The safety checks a sniper runs on the new pool before it buys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mintRenounced: StrictBool = Field(default=True, description="The token's mint authority must be renounced.")
    freezeRenounced: StrictBool = Field(default=True, description="Its freeze authority must be renounced.")
    lpBurned: StrictBool = Field(default=True, description="The pool's LP tokens must be burned.")
    minLiquidity: StrictStr | None = Field(default=None, min_length=1, max_length=40, pattern=_DECIMAL,
                                           description="Least SOL in the pool when it opens (no minimum when "
                                           "left out).", examples=["50"])


class SniperOrderRequest(_OrderRequest):
    """Buy ``tokenOut`` (a mint with no pool yet) the moment a pool for it opens, if the checks pass."""

    model_config = ConfigDict(json_schema_extra=None)

    type: Literal["sniper"]
    # SOL, by its symbol or its mint (WSOL_MINT): snipes buy with SOL.
    tokenIn: Literal["SOL", "So11111111111111111111111111111111111111112"] = Field(
        description="Snipes buy with SOL: `SOL` or its mint.", examples=["SOL"])
    tokenOut: StrictStr = Field(min_length=32, max_length=44, pattern=_BASE58_MINT,
                                description="The mint (base58) of a token that is not trading yet: launched with a "
                                "pool that has not opened, or not launched at all (it may launch later).",
                                examples=["7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"])
    maxPrice: StrictStr = Field(min_length=1, max_length=40, pattern=_POSITIVE_DECIMAL,
                                description="Most tokenIn (SOL) paid per whole tokenOut, above 0; held on chain "
                                "(minAmountOut ≥ amount / maxPrice).", examples=["0.00002"])
    checks: SniperChecks = Field(default_factory=SniperChecks)
    delaySlots: JsonInt = Field(default=0, ge=0, le=150, description="Slots (400 ms) to wait after the pool opens.")
    expiresAt: AwareDatetime | None = _expires_at()


ORDER_REQUESTS: dict[str, type[_OrderRequest]] = {
    "market": MarketOrderRequest, "limit": LimitOrderRequest, "sniper": SniperOrderRequest,
}
# Fields that belong to one type only, for a clear error when another type carries them.
_TYPE_FIELDS = {name: kind for kind, model in ORDER_REQUESTS.items() for name in model.model_fields
                if all(name not in other.model_fields for k, other in ORDER_REQUESTS.items() if k != kind)}

OrderRequest = MarketOrderRequest | LimitOrderRequest | SniperOrderRequest


def supported_order_requests() -> list[type[_OrderRequest]]:
    """The request models of the order types the engine executes today (``SUPPORTED_TYPES``)."""
    return [model for kind, model in ORDER_REQUESTS.items() if kind in SUPPORTED_TYPES]


class ExecuteOrderRequest(RootModel[OrderRequest]):
    """The body of ``POST /api/orders/execute``: one of the order types the engine executes
    (``type``, default market).

    Parsed with ``parse_order_request`` (which dispatches on ``type``); this model gives the schema,
    which lists only the types in ``SUPPORTED_TYPES``: a type the code refuses is not advertised.
    """

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        target = handler.resolve_ref_schema(json_schema)
        branches = target.pop("anyOf")  # one per member of OrderRequest, in its order
        members = get_args(OrderRequest)
        supported = supported_order_requests()
        target["oneOf"] = [branch for model, branch in zip(members, branches, strict=True) if model in supported]
        return json_schema


def parse_order_body(raw: dict[str, Any]) -> OrderRequest:
    """The order request for ``raw``'s ``type``; raises pydantic's ValidationError (see ``first_error``)."""
    kind = raw.get("type", "market")
    model = ORDER_REQUESTS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValidationError.from_exception_data("order", [{
            "type": "literal_error", "loc": ("type",), "input": kind,
            "ctx": {"expected": "'market', 'limit' or 'sniper'"}}])
    return model.model_validate(raw)  # type: ignore[return-value]


class LaunchRequest(BaseModel):
    """A token launch on the simulated cluster (local and dev stages): a new mint and its pool,
    paired with SOL, that opens ``openInSlots`` slots (400 ms each) from now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: StrictStr = Field(min_length=1, max_length=10, pattern=r"^[A-Z][A-Z0-9]{0,9}$", examples=["PEPE2"])
    decimals: JsonInt = Field(default=6, ge=0, le=9, description="Decimals of the new token.")
    venue: Literal["raydium", "meteora"] = Field(default="raydium", description="Where its pool opens.")
    liquidity: StrictStr = Field(max_length=40, pattern=_amount_pattern(9, True), examples=["50"],
                                 description="SOL paired into the new pool (above 0, below 10⁹, 9 decimals at most).")
    openInSlots: JsonInt = Field(default=0, ge=0, le=9_000, description="Slots from now until the pool opens.")
    mintRenounced: StrictBool = Field(default=True, description="The mint authority is renounced.")
    freezeRenounced: StrictBool = Field(default=True, description="The freeze authority is renounced.")
    lpBurned: StrictBool = Field(default=True, description="The pool's LP tokens are burned.")
    price: StrictStr = Field(default="0.00002", max_length=40, pattern=_amount_pattern(12, True),
                             description="SOL per whole token when the pool opens (above 0, 12 decimals at most).",
                             examples=["0.00002"])


class ListOrdersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["pending", "waiting", "routing", "building", "submitted", "confirmed", "failed",
                    "expired", "cancelled", "active"] | None = None
    limit: QueryInt = Field(default=50, ge=1, le=200)


class QuoteQuery(BaseModel):
    """The query of ``GET /api/quotes``. Two rules join two parameters, which OpenAPI cannot say of a
    query: tokenIn and tokenOut differ, and the amount has no more decimals than tokenIn has."""

    model_config = ConfigDict(extra="forbid")

    tokenIn: ListedToken = _listed_token("The token sold: a listed symbol or its mint.", "SOL")
    tokenOut: ListedToken = _listed_token("The token bought: a listed symbol or its mint.", "USDC")
    amount: StrictStr = Field(min_length=1, max_length=40, pattern=_AMOUNT, examples=["1.5"],
                              description="How much tokenIn, in token units, with at most as many decimals "
                              "as tokenIn has.")
    slippageBps: QueryInt = Field(default=50, ge=1, le=5000)


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _order_id() -> Any:
    return Field(min_length=1, max_length=64, pattern=r"^ord_[0-9a-z]+$", examples=["ord_01jd5x3k9q7v8w2m4n6p8r0t2y"])


class SubscribeAction(_Action):
    """Follow an order: a snapshot (or, with ``afterSeq``, the statuses after it), then every new status."""

    action: Literal["subscribe"]
    orderId: StrictStr = _order_id()
    afterSeq: StrictInt | None = Field(default=None, ge=0, description="Replay the statuses after this seq "
                                       "instead of a snapshot (a reconnecting client).")


class UnsubscribeAction(_Action):
    action: Literal["unsubscribe"]
    orderId: StrictStr = _order_id()


class ExecuteAction(_Action):
    """Submit an order on this socket: ``order.accepted``, then its whole lifecycle here."""

    action: Literal["execute"]
    order: ExecuteOrderRequest


class PingAction(_Action):
    action: Literal["ping"]


class CancelAction(_Action):
    """Cancel an order still ``pending`` or ``waiting``. Its subscribers get ``cancelled`` as an
    ``order.status``; a refusal (``not_cancellable``, ``not_found``) comes back as an ``error``."""

    action: Literal["cancel"]
    orderId: StrictStr = _order_id()


CLIENT_ACTIONS: tuple[type[BaseModel], ...] = (SubscribeAction, UnsubscribeAction, ExecuteAction, PingAction,
                                               CancelAction)


class WsMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    action: Literal["subscribe", "unsubscribe", "execute", "ping", "cancel"]
    orderId: StrictStr | None = Field(default=None, min_length=1, max_length=64)
    afterSeq: StrictInt | None = Field(default=None, ge=0)
    order: dict[str, Any] | None = None

    @field_validator("orderId")
    @classmethod
    def _order_id_shape(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("ord_"):
            raise ValueError("orderId looks like ord_…")
        return v


def error_code(exc: ValidationError) -> str:
    """The API's code for the first problem: ``unknown_token``, else ``validation_error``."""
    return "unknown_token" if exc.errors()[0].get("type") == "unknown_token" else "validation_error"


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(field, message) of the first problem, e.g. ("slippageBps", "Input should be ≤ 5000")."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or str((err.get("ctx") or {}).get("field", "body"))
    message = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        owner = _TYPE_FIELDS.get(field)
        message = f"{field} applies to {owner} orders only" if owner else f"unknown field {field!r}"
    elif err.get("type") == "string_type" and field in ("amount", "limitPrice", "maxPrice", "checks.minLiquidity"):
        message = f'{field} must be a decimal string such as "1.5", not a JSON number'
    elif err.get("type") == "string_pattern_mismatch" and field == "amount":
        message = (f'amount must be a plain decimal string above 0 and below 1000000000, with at most '
                   f'{_MAX_DECIMALS} decimals, such as "1.5"; got {err.get("input")!r}')
    elif err.get("type") == "string_pattern_mismatch" and field in ("maxPrice", "limitPrice"):
        example = "0.00002" if field == "maxPrice" else "160"
        message = f'{field} must be a plain decimal string above 0, such as "{example}"; got {err.get("input")!r}'
    elif err.get("type") == "string_pattern_mismatch" and field == "checks.minLiquidity":
        message = f'checks.minLiquidity must be a plain decimal string of SOL, such as "50"; got {err.get("input")!r}'
    elif err.get("type") == "string_pattern_mismatch" and field == "tokenOut":  # a sniper's: a mint
        message = f"tokenOut must be a token's mint: 32 to 44 base58 characters; got {err.get('input')!r}"
    elif err.get("loc"):
        message = _sentence(field, err)
    return field, message


def _sentence(field: str, err: Any) -> str:
    """pydantic's message as a sentence about the field ("slippageBps must be at most 5000"),
    for the kinds of error a client meets; pydantic's own words, after the field, otherwise."""
    kind, ctx = err.get("type"), err.get("ctx") or {}
    bounds = {"less_than_equal": ("at most", "le"), "greater_than_equal": ("at least", "ge"),
              "less_than": ("below", "lt"), "greater_than": ("above", "gt")}
    if kind in bounds:
        words, key = bounds[kind]
        return f"{field} must be {words} {ctx.get(key)}"
    if kind == "missing":
        return f"{field} is required"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{field} must be a whole number"
    if kind == "bool_type":
        return f"{field} must be true or false"
    if kind in ("string_type", "dict_type", "model_type"):
        return f"{field} must be a {'string' if kind == 'string_type' else 'JSON object'}"
    if kind == "string_too_long":
        return f"{field} must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return f"{field} must be at least {ctx.get('min_length')} characters"
    if kind in ("literal_error", "enum"):
        return f"{field} must be one of {ctx.get('expected')}"
    msg = str(err.get("msg", "invalid value"))
    return f"{field}: {msg[:1].lower()}{msg[1:]}"
