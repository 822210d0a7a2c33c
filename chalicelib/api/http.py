"""REST routes of API.md. Each handler: authenticate, parse, call the engine, shape the answer."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from chalice.app import Blueprint, Response
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ..domain import DomainError, Order, to_base_units, to_decimal_string
from ..logs import add_log_keys, scoped
from ..logs import logger as log
from .cancel import cancel_order
from .errors import ApiError, error_body
from .intake import authenticate, submit_order
from .models import LaunchRequest, ListOrdersQuery, QuoteQuery, error_code, first_error
from .openapi import document
from .services import Services, get_services
from .simulation import launch_token, markets_view
from .views import order_view

__all__ = ["bp"]

bp = Blueprint(__name__)
_JSON = {"Content-Type": "application/json"}
# An active entry without its order, from less than this ago (either way: clocks differ a little),
# may be an order being created (intake records it first): far longer than an intake takes.
_CREATING_MS = 5 * 60 * 1000


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=status,
                    headers={**_JSON, **(headers or {})})


def api_route(fn: Callable[..., Response]) -> Callable[..., Response]:
    """Turn ApiError into API.md's error shape; anything unexpected into a logged 500."""

    @functools.wraps(fn)
    @scoped  # its log keys (the client, the order) end with the request
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        add_log_keys(orderId=kwargs.get("order_id"))
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            return _json(exc.status, exc.body(), exc.headers)
        except Exception:
            log.exception("unhandled error", extra={"route": fn.__name__})
            return _json(500, error_body("internal_error", "internal error; it has been logged"))

    return wrapper


def _client(services: Services) -> str:
    headers = bp.current_request.headers
    client_id = authenticate(services, headers.get("x-api-key"))
    add_log_keys(clientId=client_id)
    return client_id


@bp.route("/health", methods=["GET"])
@api_route
def health() -> Response:
    checks = get_services_health()
    ok = all(v == "ok" for v in checks.values())
    return _json(200 if ok else 503, {"status": "ok" if ok else "degraded", "checks": checks})


def get_services_health() -> dict[str, str]:
    """Each dependency answers; cached two seconds (per set of services, so a restarted stack
    asks again) so that a polling load balancer costs little."""
    services = get_services()
    now = time.monotonic()
    cached = services.health_cache
    if cached is not None and now - cached[0] < 2.0:
        return dict(cached[1])
    checks: dict[str, str] = {}
    for name, probe in (
        ("redis", lambda: services.state.ping()),
        ("ordersTable", lambda: services.orders.get("ord_health")),
        ("queue", lambda: services.queue.probe()),
    ):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    services.health_cache = (now, checks)
    return checks


@bp.route("/openapi.json", methods=["GET"])
@api_route
def openapi() -> Response:
    """The OpenAPI 3.1 document of these routes (no key), with this deployment as its server."""
    request = bp.current_request
    host = request.headers.get("host")
    context = request.context or {}
    server = "http://127.0.0.1:8000"
    if host:
        scheme = request.headers.get("x-forwarded-proto", "http")
        on_execute_api = host.endswith(".amazonaws.com") and context.get("stage")
        server = f"{scheme}://{host}" + (f"/{context['stage']}" if on_execute_api else "")
    return _json(200, document(server))


@bp.route("/api/orders/execute", methods=["POST"])
@api_route
def execute_order() -> Response:
    services = get_services()
    client_id = _client(services)
    body = _json_body(services)
    accepted = submit_order(services, client_id, body, bp.current_request.headers.get("idempotency-key"))
    return _json(202 if accepted.created else 200, accepted.response(services))


def _json_body(services: Services) -> Any:
    """The request's body as JSON: 413 past the limit, 400 when it does not parse."""
    raw_body = bp.current_request.raw_body or b""
    if len(raw_body) > services.settings.max_body_bytes:
        raise ApiError(413, "payload_too_large", f"body exceeds {services.settings.max_body_bytes} bytes",
                       field="body")
    try:
        return json.loads(raw_body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON", field="body") from None


@bp.route("/api/orders/{order_id}", methods=["GET"])
@api_route
def get_order(order_id: str) -> Response:
    services = get_services()
    client_id = _client(services)
    order = services.orders.get(order_id) if order_id.startswith("ord_") else None
    if order is None or order.client_id != client_id:  # another client's order does not exist for you
        raise ApiError(404, "not_found", f"order {order_id} not found", field="orderId")
    return _json(200, order_view(order))


@bp.route("/api/orders/{order_id}", methods=["DELETE"])
@api_route
def delete_order(order_id: str) -> Response:
    """Cancel: the order, now ``cancelled``."""
    services = get_services()
    client_id = _client(services)
    return _json(200, order_view(cancel_order(services, client_id, order_id)))


@bp.route("/api/orders", methods=["GET"])
@api_route
def list_orders() -> Response:
    services = get_services()
    client_id = _client(services)
    query = _parse_query(ListOrdersQuery)
    if query.status == "active":
        orders = _active_orders(services, client_id, query.limit)
    else:
        orders = services.orders.list_for_client(client_id, status=query.status, limit=query.limit)
    return _json(200, {"orders": [order_view(o) for o in orders], "count": len(orders)})


_Query = TypeVar("_Query", bound=BaseModel)


def _parse_query(model: type[_Query]) -> _Query:
    """The query string as ``model``; an empty parameter (``?status=``) counts as absent."""
    params = {k: v for k, v in (bp.current_request.query_params or {}).items() if v != ""}
    try:
        return model.model_validate(params)
    except PydanticValidationError as exc:
        field, message = first_error(exc)
        raise ApiError(400, error_code(exc), message, field=field) from None


def _active_orders(services: Services, client_id: str, limit: int) -> list[Order]:
    """From Redis's active set; from the table when Redis does not answer (slower, same answer).

    An id whose order has ended (or no longer exists) is dropped from the set as it is found, so
    a stale entry can never hide a real active order behind it for long. Intake records an order
    as active just before it creates it: an entry without its order from within ``_CREATING_MS``
    of now is left alone (it is not listed either).
    """
    try:
        found: list[Order] = []
        offset = 0
        while len(found) < limit:
            entries = services.state.active_entries(client_id, limit, offset)
            if not entries:
                break
            ids = [i for i, _ in entries]
            orders = {i: services.orders.get(i) for i in ids}
            now_ms = time.time() * 1000
            ended = [i for (i, since), o in zip(entries, orders.values(), strict=True)
                     if (o is None and not now_ms - _CREATING_MS <= since <= now_ms + _CREATING_MS)
                     or (o is not None and o.is_terminal)]
            services.state.remove_active(client_id, *ended)
            found.extend(o for o in orders.values() if o is not None and not o.is_terminal)
            offset += len(ids) - len(ended)
        return found[:limit]
    except Exception:
        log.warning("active set unavailable; listing from the table", extra={"clientId": client_id})
        recent = services.orders.list_for_client(client_id, limit=200)
        return [o for o in recent if not o.is_terminal][:limit]


@bp.route("/api/markets", methods=["GET"])
@api_route
def get_markets() -> Response:
    services = get_services()
    _client(services)
    return _json(200, markets_view(services.market))


@bp.route("/api/sim/launches", methods=["POST"])
@api_route
def create_launch() -> Response:
    services = get_services()
    if not services.settings.simulation_routes:  # served on the local and dev stages only
        raise ApiError(404, "not_found", "no route matches this path")
    _client(services)
    body = _json_body(services)
    if not isinstance(body, dict):
        raise ApiError(400, "validation_error", "the body must be a JSON object", field="body")
    try:
        request = LaunchRequest.model_validate(body)
        launched = launch_token(services.market, request)
    except PydanticValidationError as exc:
        field, message = first_error(exc)
        raise ApiError(400, "validation_error", message, field=field) from None
    except DomainError as exc:
        raise ApiError(400, exc.code, exc.message, field=exc.field) from None
    return _json(201, launched)


@bp.route("/api/quotes", methods=["GET"])
@api_route
def get_quotes() -> Response:
    services = get_services()
    _client(services)
    query = _parse_query(QuoteQuery)
    try:
        token_in = services.market.token(query.tokenIn, field="tokenIn")
        token_out = services.market.token(query.tokenOut, field="tokenOut")
        if token_in == token_out:
            raise ApiError(400, "validation_error", "tokenIn and tokenOut must differ", field="tokenOut")
        amount_in = to_base_units(query.amount, token_in)
        quotes, rejected = services.router.quotes(token_in, token_out, amount_in)
        route = services.router.pick(quotes, rejected, query.slippageBps) if quotes else None
    except DomainError as exc:
        raise ApiError(400, exc.code, exc.message, field=exc.field) from None
    body: dict[str, Any] = {
        "tokenIn": token_in.symbol,
        "tokenOut": token_out.symbol,
        "amount": query.amount,
        "quotes": [q.to_data() for q in quotes],
        "rejected": rejected,
        "route": None,
    }
    if route is not None:
        body["route"] = {
            "venue": route.venue,
            "amountOut": to_decimal_string(route.amount_out, token_out),
            "minAmountOut": to_decimal_string(route.min_amount_out, token_out),
            "slippageBps": query.slippageBps,
            "wrapSol": route.wrap_sol,
            "unwrapSol": route.unwrap_sol,
        }
    return _json(200, body)
