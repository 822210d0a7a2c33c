"""WebSocket API handlers: ``$connect`` authenticates, ``$default`` dispatches on ``action``,
``$disconnect`` forgets the connection. Every reply goes through the management API, like the live events.

These are registered on the app in ``app.py``, not through a Blueprint: Chalice wraps
WebSocket handlers (event parsing, endpoint configuration) only when they are registered
on the app itself; a Blueprint's would receive the raw Lambda event.

``?orderId=`` on connect cannot be served inside ``$connect``: API Gateway accepts no push to
a connection until ``$connect`` has returned. So ``$connect`` records the connection and
queues a subscription job; the worker runs it once the socket is open (see workers.py).
"""

from __future__ import annotations

import json
import time
from typing import Any

from chalice.app import Response, WebsocketEvent
from pydantic import ValidationError as PydanticValidationError

from ..domain import iso, utc_now
from ..logs import add_log_keys, scoped
from .cancel import cancel_order
from .errors import ApiError
from .intake import authenticate, submit_order
from .models import WsMessage, first_error
from .services import Services, get_services
from .subscriptions import send, subscribe, unsubscribe

__all__ = ["handle_message", "ws_connect", "ws_disconnect", "ws_message"]


def _query(event: WebsocketEvent) -> dict[str, str]:
    return dict(event.to_dict().get("queryStringParameters") or {})


@scoped
def ws_connect(event: WebsocketEvent) -> Response:
    services = get_services()
    query = _query(event)
    add_log_keys(connectionId=event.connection_id, orderId=query.get("orderId"))
    try:
        client_id = authenticate(services, query.get("apiKey"))
    except ApiError as exc:
        return Response(body=json.dumps(exc.body()), status_code=exc.status)
    add_log_keys(clientId=client_id)
    order_id = query.get("orderId")
    after = query.get("afterSeq")
    if after is not None and not (after.isascii() and after.isdigit()):
        # Refused at the handshake, as a bad key is: a replay from a seq the client did not mean
        # would send the wrong events (or, ignored, a snapshot it did not ask for).
        error = ApiError(400, "validation_error", "afterSeq must be a whole number (the last seq seen)",
                         field="afterSeq")
        return Response(body=json.dumps(error.body()), status_code=400)
    services.connections.put(
        event.connection_id, client_id, iso(utc_now()), int(time.time()) + services.settings.connection_ttl_seconds
    )
    if order_id:
        services.queue.send({
            "kind": "subscribe",
            "connectionId": event.connection_id,
            "clientId": client_id,
            "orderId": order_id,
            "afterSeq": int(after) if after else None,
        })
    return Response(body="", status_code=200)


def ws_message(event: WebsocketEvent) -> None:
    services = get_services()
    handle_message(services, event.connection_id, event.body)


@scoped
def ws_disconnect(event: WebsocketEvent) -> None:
    services = get_services()
    add_log_keys(connectionId=event.connection_id)
    services.forget_connection(event.connection_id)
    services.connections.delete(event.connection_id)  # its place in orders' subs goes at the next push


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}


@scoped  # the connection, its client and the order a message is about, on the lines it causes
def handle_message(services: Services, connection_id: str, body: str) -> None:
    """Dispatch one client message. Bad input gets an ``error`` message, never a dropped socket."""
    client_id = services.connection_owner(connection_id)
    add_log_keys(connectionId=connection_id, clientId=client_id)
    if client_id is None:
        send(services, connection_id, _error("unauthorized", "unknown connection; reconnect"))
        return
    try:
        raw = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        send(services, connection_id, _error("invalid_json", "the message is not valid JSON"))
        return
    if not isinstance(raw, dict):
        send(services, connection_id, _error("validation_error", "the message must be a JSON object"))
        return
    try:
        message = WsMessage.model_validate(raw)
    except PydanticValidationError as exc:
        field, text = first_error(exc)
        code = "unknown_action" if field == "action" else "validation_error"
        send(services, connection_id, _error(code, text, field=field))
        return
    add_log_keys(orderId=message.orderId)
    if message.action == "ping":
        send(services, connection_id, {"type": "pong"})
    elif message.action in ("subscribe", "unsubscribe", "cancel") and not message.orderId:
        send(services, connection_id, _error("validation_error", "orderId is required", field="orderId"))
    elif message.action == "subscribe" and message.orderId:
        subscribe(services, connection_id, client_id, message.orderId, message.afterSeq)
    elif message.action == "unsubscribe" and message.orderId:
        unsubscribe(services, connection_id, client_id, message.orderId)
        send(services, connection_id, {"type": "order.unsubscribed", "orderId": message.orderId})
    elif message.action == "execute":
        _execute(services, connection_id, client_id, message.order)
    elif message.action == "cancel" and message.orderId:
        _cancel(services, connection_id, client_id, message.orderId)


def _cancel(services: Services, connection_id: str, client_id: str, order_id: str) -> None:
    """``order.cancelled`` answers the action (what DELETE's 200 says), so a connection that does not
    follow the order learns it too; the ``cancelled`` status itself reaches the order's subscribers
    as any status does, an ``order.status`` from the orders table's stream. A refusal is an
    ``error`` message."""
    try:
        order = cancel_order(services, client_id, order_id)
    except ApiError as exc:
        extra: dict[str, Any] = {"status": exc.status, "orderId": order_id}
        if exc.field:
            extra["field"] = exc.field
        send(services, connection_id, _error(exc.code, exc.message, **extra))
        return
    send(services, connection_id, {"type": "order.cancelled", "orderId": order.order_id, "seq": order.version})


def _execute(services: Services, connection_id: str, client_id: str, order: dict[str, Any] | None) -> None:
    if order is None:
        send(services, connection_id, _error("validation_error", "order is required", field="order"))
        return
    try:
        accepted = submit_order(services, client_id, order)
    except ApiError as exc:
        extra: dict[str, Any] = {"status": exc.status}
        if exc.field:
            extra["field"] = exc.field
        if "Retry-After" in exc.headers:
            extra["retryAfter"] = int(exc.headers["Retry-After"])
        send(services, connection_id, _error(exc.code, exc.message, **extra))
        return
    add_log_keys(orderId=accepted.order.order_id)
    send(services, connection_id, {
        "type": "order.accepted",
        "orderId": accepted.order.order_id,
        "clientOrderId": accepted.order.client_order_id,
        "status": accepted.order.status.value,
        "created": accepted.created,
    })
    # The whole lifecycle on this socket, from seq 1: replay what already happened, then live.
    subscribe(services, connection_id, client_id, accepted.order.order_id, after_seq=0)
