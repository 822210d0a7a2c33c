"""The REST contract as an OpenAPI 3.1 document, generated from the request and response models
and one table of operations (``OPERATIONS``).

Served at ``GET /openapi.json``; a copy is committed under ``docs/`` and a test fails when the
two differ, and another when the table and the app's own routes disagree. Schemas come from
pydantic (``models_json_schema`` with ``#/components/schemas/{model}`` references): request
models as validated, response models as serialised.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .contract import (
    AcceptedOrder,
    ErrorResponse,
    Health,
    LaunchResponse,
    MarketsResponse,
    OrderList,
    OrderView,
    QuotesResponse,
)
from .models import ExecuteOrderRequest, LaunchRequest, ListOrdersQuery, QuoteQuery

__all__ = ["OPERATIONS", "Operation", "Response", "document", "referenced_schemas"]

VERSION = "1.0.0"
REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Response:
    status: int
    description: str
    model: type[BaseModel] | None = ErrorResponse
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description
    links: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    content_types: tuple[str, ...] = ("application/json",)


@dataclass(frozen=True)
class Operation:
    method: Literal["GET", "POST", "DELETE"]
    path: str
    operation_id: str
    summary: str
    tag: str
    responses: Sequence[Response]
    description: str = ""
    authenticated: bool = True
    body: type[BaseModel] | None = None
    body_examples: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    query: type[BaseModel] | None = None
    # name -> (description, schema); an order id unless said otherwise
    path_parameters: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)


# Errors, each in ErrorResponse's shape.
def _e400(what: str = "a field is invalid") -> Response:
    return Response(400, f"Validation error: {what}; `error.field` names it.")


E401 = Response(401, "Missing or invalid `x-api-key`.")
E404_ORDER = Response(404, "No such order for this client (another client's order does not exist for you).")
E503_KEYS = Response(503, "`keys_unavailable`: API keys cannot be checked right now (fail closed); retry later.")
RETRY_AFTER = {"Retry-After": "Seconds until the rate-limit window resets."}

ORDER_LINKS: dict[str, dict[str, Any]] = {
    "GetOrder": {"operationId": "getOrder", "parameters": {"orderId": "$response.body#/orderId"},
                 "description": "The order just accepted, with its status and history."},
}
ACCEPTED_LINKS: dict[str, dict[str, Any]] = {
    **ORDER_LINKS,
    "CancelOrder": {"operationId": "cancelOrder", "parameters": {"orderId": "$response.body#/orderId"},
                    "description": "Cancel the order just accepted, while it is pending or waiting."},
}

ASSET_TYPES = ("text/javascript", "text/css", "image/svg+xml")
ORDER_ID = {"type": "string", "pattern": "^ord_[0-9a-z]{26}$"}
MARKET_EXAMPLE = {"type": "market", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", "slippageBps": 50,
                  "clientOrderId": "my-order-1"}
# Far above the price (SOL trades near 150 USDC): it waits, until cancelled or expired.
LIMIT_EXAMPLE = {"type": "limit", "tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5", "limitPrice": "1000",
                 "slippageBps": 50}
# A mint nobody has launched: it waits (it may launch later), until cancelled or expired. Its cap is
# five times the simulation's default launch price, so that a launch at that price fills it.
SNIPER_EXAMPLE = {"type": "sniper", "tokenIn": "SOL", "tokenOut": "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU",
                  "amount": "0.5", "maxPrice": "0.0001", "slippageBps": 500,
                  "checks": {"mintRenounced": True, "freezeRenounced": True, "lpBurned": True, "minLiquidity": "10"},
                  "delaySlots": 0}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET", "/health", "getHealth", "Readiness of every dependency", "operations",
        authenticated=False,
        responses=(Response(200, "Every dependency answers.", Health),
                   Response(503, "A dependency does not answer.", Health)),
    ),
    Operation(
        "POST", "/api/orders/execute", "executeOrder", "Submit an order", "orders",
        description=("Validates, persists the order as `pending` and queues it; the answer comes before any "
                     "venue is asked. Watch it on `wsUrl`. The same `clientOrderId` (or `Idempotency-Key` "
                     "header) with the same body returns the same order (200), never a second one. A `limit` "
                     "order waits for its price, a `sniper` order for a pool of its mint to open: a mint that "
                     "already trades (a listed token, or a launched one whose pool is open) is a 400 naming "
                     "`tokenOut`."),
        body=ExecuteOrderRequest,
        body_examples={"market": MARKET_EXAMPLE, "limit": LIMIT_EXAMPLE, "sniper": SNIPER_EXAMPLE},
        responses=(
            Response(202, "Accepted: the order is queued.", AcceptedOrder, links=ACCEPTED_LINKS),
            Response(200, "The same idempotency key and body were seen before: that order.", AcceptedOrder,
                     links=ORDER_LINKS),
            _e400(), E401,
            Response(409, "`idempotency_conflict`: the idempotency key was used with a different order."),
            Response(413, "The body is larger than 16 KiB."),
            Response(415, "The body is not `application/json`."),
            Response(429, "`rate_limited`: too many orders this minute.", headers=RETRY_AFTER),
            Response(503, "`enqueue_failed` (the order was not accepted: submit it again) or `keys_unavailable`."),
        ),
    ),
    Operation(
        "GET", "/api/orders/{orderId}", "getOrder", "One order, with its whole history", "orders",
        path_parameters={"orderId": ("The id POST returned (`ord_…`).", ORDER_ID)},
        responses=(Response(200, "The order.", OrderView), E401, E404_ORDER, E503_KEYS),
    ),
    Operation(
        "DELETE", "/api/orders/{orderId}", "cancelOrder", "Cancel an order that has not started executing",
        "orders",
        description=("An order still `pending` or `waiting` ends `cancelled` (`data.by`: `client`); its "
                     "subscribers get that status like any other. One conditional write: a cancel racing a "
                     "trigger or the worker either wins whole or answers 409."),
        path_parameters={"orderId": ("The id POST returned (`ord_…`).", ORDER_ID)},
        responses=(Response(200, "The order, now `cancelled`.", OrderView), E401,
                   Response(409, "`not_cancellable`: the order has left `pending`/`waiting` (it executes, or "
                            "has finished)."),
                   E404_ORDER, E503_KEYS),
    ),
    Operation(
        "GET", "/api/orders", "listOrders", "The caller's orders, newest first", "orders",
        description=("`status=active` lists every order not yet ended. Any other `status` looks through the "
                     "caller's newest orders, twenty pages of `limit` at most (1,000 at the default), so an "
                     "old order in a rare status may not be listed; `GET /api/orders/{orderId}` always finds "
                     "it."),
        query=ListOrdersQuery,
        responses=(Response(200, "The orders.", OrderList), _e400("a query parameter is invalid"), E401,
                   E503_KEYS),
    ),
    Operation(
        "GET", "/api/quotes", "getQuotes", "Every venue's quote and the route the router would pick now", "market",
        query=QuoteQuery,
        responses=(Response(200, "Quotes, best first.", QuotesResponse), _e400("a query parameter is invalid"),
                   E401, E503_KEYS),
    ),
    Operation(
        "GET", "/api/markets", "getMarkets", "Every pair with each venue's price and liquidity now", "market",
        responses=(Response(200, "The markets, launched tokens last.", MarketsResponse), E401, E503_KEYS),
    ),
    Operation(
        "POST", "/api/sim/launches", "createLaunch", "Launch a token on the simulated cluster", "simulation",
        description=("Local and dev stages only (404 elsewhere): a new mint and one pool paired with SOL on the "
                     "chosen venue, opening `openInSlots` slots (400 ms) from now. Its mint is what a sniper "
                     "order watches: the sniper orders waiting on it trigger when the pool opens (plus their "
                     "`delaySlots`); once the pool opens, quotes and market orders work on it too."),
        body=LaunchRequest,
        body_examples={"launch": {"symbol": "PEPE2", "decimals": 6, "venue": "raydium", "liquidity": "50",
                                  "openInSlots": 10, "mintRenounced": True, "freezeRenounced": True,
                                  "lpBurned": True}},
        responses=(Response(201, "Launched.", LaunchResponse), _e400(), E401,
                   Response(404, "Not served on this stage."),
                   Response(413, "The body is larger than 16 KiB."),
                   Response(415, "The body is not `application/json`."), E503_KEYS),
    ),
    Operation(
        "GET", "/openapi.json", "getOpenApi", "This document", "operations", authenticated=False,
        responses=(Response(200, "The OpenAPI 3.1 document.", None),),
    ),
    Operation(
        "GET", "/", "getDashboard", "The live dashboard page", "dashboard", authenticated=False,
        description="One page that speaks this API and the WebSocket API like any client; it asks for a key.",
        responses=(Response(200, "The page.", None, content_types=("text/html",)),),
    ),
    Operation(
        "GET", "/static/{name}", "getDashboardFile", "A file the dashboard loads", "dashboard", authenticated=False,
        path_parameters={"name": ("A file of the page (`app.js`, `style.css`, …).",
                                  {"type": "string", "pattern": "^[a-z0-9_-]+\\.(js|css|svg)$",
                                   "examples": ["app.js"]})},
        responses=(Response(200, "The file.", None, content_types=ASSET_TYPES),
                   Response(304, "Not modified since the ETag given in If-None-Match.", None,
                            content_types=ASSET_TYPES),
                   Response(404, "No such file.")),
    ),
)


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "description": description, "schema": dict(schema)}
        for name, (description, schema) in op.path_parameters.items()
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = _without_null(prop)  # a query string has no null: an optional parameter is left out
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if name not in required:  # the routes read `?status=` as no status at all
                param["allowEmptyValue"] = True
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if op.operation_id == "executeOrder":
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "description": "An alternative to `clientOrderId`, with the same rules.",
                       "schema": {"type": "string", "minLength": 1, "maxLength": 64,
                                  "pattern": "^[A-Za-z0-9._:\\-]+$"}})
    return params


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``prop`` without its ``null`` branch (pydantic's ``X | None``), and without a ``null`` default."""
    branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) == len(prop.get("anyOf", [])):
        return prop
    rest = {k: v for k, v in prop.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**branches[0], **rest} if len(branches) == 1 else {**rest, "anyOf": branches}


_Refs = Mapping[tuple[Any, JsonSchemaMode], Any]


def _response(resp: Response, refs: _Refs) -> dict[str, Any]:
    out: dict[str, Any] = {"description": resp.description}
    if resp.model is not None:
        out["content"] = {kind: {"schema": refs[(resp.model, "serialization")]} for kind in resp.content_types}
    else:
        out["content"] = {kind: {"schema": {"type": "object"} if kind == "application/json" else {"type": "string"}}
                          for kind in resp.content_types}
    if resp.headers:
        out["headers"] = {name: {"description": text, "schema": {"type": "integer"}}
                          for name, text in resp.headers.items()}
    if resp.links:
        out["links"] = {name: dict(link) for name, link in resp.links.items()}
    return out


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    seen: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorResponse, "serialization"): None}
    for op in OPERATIONS:
        if op.body is not None:
            seen[(op.body, "validation")] = None
        for resp in op.responses:
            if resp.model is not None:
                seen[(resp.model, "serialization")] = None
    return list(seen)


def _refs_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from _refs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs_in(item)


def referenced_schemas(schemas: Mapping[str, Any], *roots: Any) -> dict[str, Any]:
    """The component schemas that ``roots`` reference, directly or through each other. Models the
    document does not reach (an order type not executed yet) are left out, not advertised."""
    prefix = REF.format(model="")
    keep: dict[str, None] = {}
    pending = [ref for root in roots for ref in _refs_in(root)]
    while pending:
        name = pending.pop().removeprefix(prefix)
        if name in schemas and name not in keep:
            keep[name] = None
            pending.extend(_refs_in(schemas[name]))
    return {name: schema for name, schema in schemas.items() if name in keep}


@lru_cache(maxsize=4)
def document(server_url: str = "http://127.0.0.1:8000") -> dict[str, Any]:
    """The whole document. ``server_url`` is where this deployment answers."""
    refs, defs = models_json_schema(_models(), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "security": [{"apiKey": []}] if op.authenticated else [],
            "responses": {str(r.status): _response(r, refs) for r in op.responses},
        }
        operation["responses"]["default"] = {
            "description": "Any other error (unknown route 404, wrong method 405, internal 500), same shape.",
            "content": {"application/json": {"schema": refs[(ErrorResponse, "serialization")]}},
        }
        if op.description:
            operation["description"] = op.description
        params = _parameters(op)
        if params:
            operation["parameters"] = params
        if op.body is not None:
            media: dict[str, Any] = {"schema": refs[(op.body, "validation")]}
            if op.body_examples:
                media["examples"] = {name: {"value": dict(value)} for name, value in op.body_examples.items()}
            operation["requestBody"] = {"required": True, "content": {"application/json": media}}
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Order execution engine",
            "version": VERSION,
            "description": ("Market, limit and sniper swap orders on Solana DEX venues (Raydium, Meteora), "
                            "routed to the best net price. Amounts and prices are decimal strings in token "
                            "units, never JSON numbers. Progress streams over the WebSocket API (see the "
                            "AsyncAPI document)."),
        },
        "servers": [{"url": server_url}],
        "tags": [{"name": "orders"}, {"name": "market"}, {"name": "simulation"}, {"name": "operations"},
                 {"name": "dashboard"}],
        "paths": paths,
        "components": {
            "schemas": referenced_schemas(defs.get("$defs", {}), paths),
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
    }
