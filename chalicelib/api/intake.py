"""Accepting an order, for REST and WebSocket alike: validate, authenticate, rate-limit,
persist ``pending`` (idempotently), enqueue.

Idempotency is one conditional write: the order id is derived from (client, key), so two
concurrent identical requests race for the same item and exactly one creates it. A replay
of an order still ``pending`` after ``REENQUEUE_AFTER_SECONDS`` re-enqueues it, which repairs
the one gap a crash could leave (persisted, never enqueued) and is harmless otherwise:
execution is at most once. Replays inside that window (concurrent duplicates) enqueue nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from ..domain import (
    DomainError,
    Order,
    OrderStatus,
    OrderType,
    SniperChecks,
    Token,
    UnknownTokenError,
    ValidationError,
    iso,
    request_fingerprint,
    to_base_units,
    unlaunched,
)
from ..logs import logger as log
from .errors import ApiError
from .keys import KeysUnavailableError
from .models import IDEMPOTENCY_KEY, OrderRequest, SniperOrderRequest, error_code, first_error, parse_order_body
from .services import Services

__all__ = ["Accepted", "authenticate", "parse_order_request", "submit_order"]

REENQUEUE_AFTER_SECONDS = 10


@dataclass(frozen=True)
class Accepted:
    order: Order
    created: bool

    def response(self, services: Services) -> dict[str, Any]:
        return {
            "orderId": self.order.order_id,
            "status": self.order.status.value,
            "clientOrderId": self.order.client_order_id,
            "wsUrl": f"{services.settings.ws_public_url}/?orderId={self.order.order_id}",
        }


def authenticate(services: Services, api_key: str | None) -> str:
    """The client a key belongs to; 401 otherwise, and 503 while the key store cannot be read
    (keys fail closed: no key is accepted that cannot be checked)."""
    try:
        ring = services.keys.ring()
    except KeysUnavailableError:
        raise ApiError(503, "keys_unavailable", "API keys cannot be checked right now; try again later") from None
    client_id = ring.client_for(api_key)
    if client_id is None:
        raise ApiError(401, "unauthorized", "missing or invalid API key", field="x-api-key")
    return client_id


def parse_order_request(raw: Any) -> OrderRequest:
    if not isinstance(raw, dict):
        raise ApiError(400, "validation_error", "the body must be a JSON object", field="body")
    try:
        return parse_order_body(raw)
    except PydanticValidationError as exc:
        field, message = first_error(exc)
        raise ApiError(400, error_code(exc), message, field=field) from None


def _header_key(value: str) -> str:
    """The ``Idempotency-Key`` header, held to the same rules as ``clientOrderId``."""
    try:
        return IDEMPOTENCY_KEY.validate_python(value)
    except PydanticValidationError as exc:
        _, message = first_error(exc)
        raise ApiError(400, "validation_error", f"Idempotency-Key: {message}", field="Idempotency-Key") from None


def submit_order(services: Services, client_id: str, raw: Any, idempotency_key: str | None = None) -> Accepted:
    request = parse_order_request(raw)
    key = request.clientOrderId
    key_field = "clientOrderId"
    if idempotency_key is not None:
        header_key = _header_key(idempotency_key)
        if key is not None and key != header_key:
            # Two idempotency keys that disagree: which order is meant cannot be told.
            raise ApiError(409, "idempotency_conflict",
                           "clientOrderId and the Idempotency-Key header differ; send one, or the same key in both",
                           field="Idempotency-Key")
        key, key_field = header_key, ("clientOrderId" if key is not None else "Idempotency-Key")
    expires_at = getattr(request, "expiresAt", None)
    sniper = _sniper_terms(request) if isinstance(request, SniperOrderRequest) else None
    try:
        token_in = services.market.token(request.tokenIn, field="tokenIn")
        token_out = (_sniper_target(services, request.tokenOut) if sniper is not None
                     else services.market.token(request.tokenOut, field="tokenOut"))
        amount_in = to_base_units(request.amount, token_in, field="amount")
        order = Order.create(
            client_id=client_id,
            token_in=token_in,
            token_out=token_out,
            amount_in=amount_in,
            slippage_bps=request.slippageBps,
            order_type=OrderType(request.type),
            client_order_id=key,
            # Normalised, so "1.5" and "1.50", "sol" and "SOL" are the same order.
            request_hash=request_fingerprint({
                "type": request.type, "tokenIn": token_in.mint, "tokenOut": token_out.mint,
                "amount": str(amount_in),
                "slippageBps": request.slippageBps,
                "limitPrice": _canonical(getattr(request, "limitPrice", None)),
                "maxPrice": _canonical(getattr(request, "maxPrice", None)),
                # as given, to the millisecond; only when given, so a replay without it is the same
                # order, and the fingerprints of orders stored before it existed do not change
                **({"expiresAt": iso(expires_at)} if expires_at is not None else {}),
                **({"checks": sniper[0].to_data(), "delaySlots": sniper[1]} if sniper is not None else {}),
            }),
            limit_price=getattr(request, "limitPrice", None),
            max_price=getattr(request, "maxPrice", None),
            expires_at=expires_at,
            checks=sniper[0] if sniper is not None else None,
            delay_slots=sniper[1] if sniper is not None else 0,
        )
    except DomainError as exc:
        raise ApiError(400, exc.code, exc.message, field=exc.field) from None

    # One Redis round trip: the rate limit's hit, and the order recorded as active (before it is
    # created, so before it is queued: the worker removes it when it ends, and that removal must
    # not be able to run first, or an ended order would stay in the set for good).
    try:
        decision = services.state.admit(client_id, services.settings.rate_limit_per_min, order.order_id,
                                        _millis(order))
    except Exception:  # Redis guards and caches; an order is not refused because it is away
        log.warning("rate limiter unavailable; order let through",
                    extra={"orderId": order.order_id, "clientId": client_id})
        decision = None
    if decision is not None and not decision.allowed:
        # A resubmission of an order already made creates nothing, so the limit does not refuse it.
        stored_before = services.orders.get(order.order_id) if key is not None else None
        if stored_before is None or stored_before.client_id != client_id:
            # Its entry taken back; one left behind lists an order that does not exist: the list skips it.
            _best_effort(lambda: services.state.withdraw_active(
                decision, lambda: key is None or services.orders.get(order.order_id) is None),
                "could not withdraw an active entry", orderId=order.order_id, clientId=client_id)
            raise ApiError(429, "rate_limited",
                           f"more than {services.settings.rate_limit_per_min} orders per minute",
                           headers={"Retry-After": str(decision.retry_after)})
        stored, created = stored_before, False
    else:
        stored, created = services.orders.create(order)
    if not created:
        if decision is not None and decision.allowed:
            # A lost refund costs the client one order of its minute, nothing more.
            _best_effort(lambda: services.state.refund_rate_limit(decision), "rate limit refund failed",
                         clientId=client_id)
        if decision is not None and decision.added and stored.is_terminal:
            # An ended order's entry, put back by this request: its worker has removed it already.
            _best_effort(lambda: services.state.remove_active(client_id, order.order_id),
                         "could not remove an active entry", orderId=order.order_id, clientId=client_id)
        if stored.request_hash != order.request_hash:
            raise ApiError(409, "idempotency_conflict",
                           f"{key_field} {key!r} was already used with a different order", field=key_field)
        never_started = stored.status is OrderStatus.PENDING and stored.version == 1
        if never_started and _age_seconds(stored) >= REENQUEUE_AFTER_SECONDS:
            # Its first message may still be queued (a backlog): sent again, never withdrawn.
            _enqueue(services, stored, withdraw=False)
        return Accepted(stored, created=False)
    if decision is None or not decision.added:
        # Not recorded by the admission: Redis was away then, or the entry was another request's
        # for the same order (a concurrent duplicate, which may take its entry back): this order's own now.
        # Redis is a cache: the order is safe in DynamoDB and on the queue.
        _best_effort(lambda: services.state.add_active(client_id, order.order_id, _millis(order)),
                     "could not record active order", orderId=order.order_id, clientId=client_id)
    _enqueue(services, order)
    log.info("order accepted", extra={"orderId": order.order_id, "clientId": client_id, "type": order.type.value,
                                      "status": order.status.value, "seq": order.version})
    return Accepted(order, created=True)


def _sniper_terms(request: SniperOrderRequest) -> tuple[SniperChecks, int]:
    checks = request.checks
    minimum = None if checks.minLiquidity is None else Decimal(checks.minLiquidity)
    return SniperChecks(checks.mintRenounced, checks.freezeRenounced, checks.lpBurned, minimum), request.delaySlots


def _sniper_target(services: Services, mint: str) -> Token:
    """What a sniper order may watch: a launched token whose pool has not opened yet, or a mint
    nobody has launched (it may launch later; its decimals are learnt then). A listed token, or a
    launched one whose pool is open, already trades: a market or limit order buys it."""
    market = services.market
    try:
        token = market.token(mint, field="tokenOut")
    except UnknownTokenError:
        return unlaunched(mint)
    launch = market.launches.get(token.mint)
    if launch is None or market.is_open(launch):
        raise ValidationError(f"{token.symbol} ({token.mint}) is already trading: a sniper order watches a mint "
                              "whose pool has not opened yet; buy it with a market or limit order",
                              field="tokenOut")
    return token


def _enqueue(services: Services, order: Order, *, withdraw: bool = True) -> None:
    """Queue the order. If that fails, a new order is withdrawn (not accepted, so not kept: the
    client's resubmission creates it afresh); a resubmitted one is kept, since a message of its
    own may be queued already, and the client is told to submit again, which queues it again."""
    try:
        # The order rides along, so the worker's first attempt needs no read of the table.
        services.queue.send({"orderId": order.order_id, "order": services.orders.snapshot(order)})
    except Exception as exc:
        log.error("enqueue failed", extra={"orderId": order.order_id, "clientId": order.client_id, "error": repr(exc)})
        if not withdraw:
            raise ApiError(503, "enqueue_failed",
                           "the order is recorded but could not be queued again; submit it again") from exc
        try:
            # (Should this delete fail too, a replay after REENQUEUE_AFTER_SECONDS re-enqueues it.)
            if services.orders.delete_unstarted(order.order_id):
                services.state.remove_active(order.client_id, order.order_id)
        except Exception:
            log.exception("could not withdraw unqueued order",
                          extra={"orderId": order.order_id, "clientId": order.client_id})
        raise ApiError(503, "enqueue_failed",
                       "the order could not be queued and was not accepted; submit it again") from exc


def _best_effort(action: Callable[[], object], failure: str, **keys: str) -> None:
    """One of intake's calls to Redis besides the admission: Redis guards and caches, so a call
    that fails is logged (``failure``, with the order's ``keys``) and intake goes on."""
    try:
        action()
    except Exception:
        log.warning(failure, extra=keys)


def _canonical(value: str | None) -> str | None:
    try:
        return None if value is None else format(Decimal(value).normalize(), "f")
    except ArithmeticError:
        return value


def _age_seconds(order: Order) -> float:
    return time.time() - _millis(order) / 1000


def _millis(order: Order) -> int:
    return int(datetime.fromisoformat(order.created_at.replace("Z", "+00:00")).timestamp() * 1000)
